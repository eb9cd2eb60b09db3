import pytest

from streamrec.errors import CheckpointError
from streamrec.events import Event
from streamrec.windows import Added, WindowStore

HOUR = 3_600_000


def items(store: WindowStore, user: str = "u") -> list[str]:
    return [e.item_id for e in store.window(user)]


def test_keeps_the_last_n_events() -> None:
    store = WindowStore(max_events=3)
    for t in range(5):
        store.add(Event("u", f"i{t}", "view", t))
    assert items(store) == ["i2", "i3", "i4"]


def test_events_older_than_the_horizon_leave_the_window() -> None:
    store = WindowStore(max_events=10, horizon_ms=2 * HOUR)
    store.add(Event("u", "old", "view", 0))
    store.add(Event("u", "mid", "view", 2 * HOUR))
    store.add(Event("u", "new", "view", 3 * HOUR))
    assert items(store) == ["mid", "new"]


def test_duplicate_event_ids_are_dropped_and_counted() -> None:
    store = WindowStore()
    assert store.add(Event("u", "a", "view", 1, "e1")) is Added.ADDED
    assert store.add(Event("u", "a", "view", 1, "e1")) is Added.DUPLICATE
    assert store.add(Event("u", "a", "view", 1)) is Added.ADDED  # no id: never a duplicate
    assert items(store) == ["a", "a"] and store.stats.duplicates == 1


def test_late_events_are_inserted_in_time_order_or_dropped_when_too_late() -> None:
    store = WindowStore(max_lateness_ms=HOUR)
    store.add(Event("u", "a", "view", 10 * HOUR))
    store.add(Event("u", "c", "view", 12 * HOUR))
    assert store.add(Event("u", "b", "view", 11 * HOUR + 1)) is Added.ADDED
    assert store.add(Event("u", "z", "view", 10 * HOUR)) is Added.TOO_LATE
    assert items(store) == ["a", "b", "c"] and store.stats.too_late == 1


def test_least_recently_active_user_is_evicted_at_the_cap() -> None:
    store = WindowStore(max_users=2)
    store.add(Event("a", "x", "view", 1))
    store.add(Event("b", "x", "view", 2))
    store.add(Event("a", "y", "view", 3))  # a is now the most recent
    store.add(Event("c", "x", "view", 4))
    assert set(store.users()) == {"a", "c"} and store.stats.evicted_users == 1


def test_idle_users_expire_by_event_time() -> None:
    store = WindowStore(idle_ttl_ms=HOUR)
    store.add(Event("idle", "x", "view", 0))
    store.add(Event("busy", "x", "view", 5 * HOUR))
    assert store.expire(now_ms=5 * HOUR) == 1
    assert list(store.users()) == ["busy"] and store.stats.evicted_users == 1


def test_seen_items_are_bounded_and_follow_remember_actions() -> None:
    store = WindowStore(max_seen_items=2, remember_actions={"purchase"})
    for t, (item, action) in enumerate([("a", "purchase"), ("b", "view"), ("c", "purchase"), ("d", "purchase")]):
        store.add(Event("u", item, action, t))
    assert list(store.seen_items("u")) == ["c", "d"]


def test_snapshot_restores_windows_ids_and_seen_items() -> None:
    store = WindowStore(max_events=3)
    for t in range(4):
        store.add(Event("u", f"i{t}", "cart", t, f"e{t}", {"price": "1"}))
    store.add(Event("v", "x", "view", 9))
    blob = store.snapshot(["u"])
    restored = WindowStore(max_events=3)
    assert restored.restore(blob) == ["u"]
    assert restored.window("u") == store.window("u") and "v" not in restored
    assert restored.add(Event("u", "i3", "cart", 3, "e3")) is Added.DUPLICATE
    assert list(restored.seen_items("u")) == list(store.seen_items("u"))


def test_unreadable_snapshot_raises_checkpoint_error() -> None:
    with pytest.raises(CheckpointError):
        WindowStore().restore(b"\x00\x01garbage")


def test_drop_forgets_users_without_counting_evictions() -> None:
    store = WindowStore()
    store.add(Event("u", "a", "view", 1))
    store.drop(["u", "never-seen"])
    assert len(store) == 0 and store.stats.evicted_users == 0
