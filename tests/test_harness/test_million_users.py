"""The million-users soak's log does what the benchmark's checks rely on (benchmarks/million_users.py)."""

from harness.user_log import user_log
from streamrec.windows import WindowStore

TTL_MS = 2 * 3_600_000


def test_the_log_is_time_ordered_and_holds_every_user() -> None:
    events = list(user_log(4000, max_users=800, ttl_ms=TTL_MS))
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    assert len({e.user_id for e in events}) == 4000
    assert len({e.event_id for e in events}) == len(events) < 1.5 * 4000


def test_the_ttl_binds_in_the_first_half_the_cap_in_the_second_and_the_cap_is_full_at_the_end() -> None:
    store = WindowStore(max_users=800, idle_ttl_ms=TTL_MS)
    held: list[int] = []
    for n, event in enumerate(user_log(8000, max_users=800, ttl_ms=TTL_MS)):
        store.add(event)
        store.expire(event.timestamp)
        if n % 500 == 0:
            held.append(len(store))
    first, second = held[len(held) // 4: len(held) // 2], held[-len(held) // 4:]
    assert max(first) < 0.8 * 800  # the idle TTL alone keeps about half the cap
    assert min(second) == 800 == len(store)  # the cap evicts; full when the log ends
    assert store.stats.evicted_users > 8000 - 800
