"""Synthetic logs: seeded, with the planted successor structure, and written in files the readers load back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamrec.catalog import read_items
from streamrec.errors import ConfigError
from streamrec.events import ActionVocabulary, Event
from streamrec.sources import read_log
from streamrec.synthetic import CATEGORIES, ECOMMERCE_ACTIONS, SyntheticLog, generate, write_events, write_items


def _transitions(events: list[Event]) -> Iterator[tuple[Event, Event]]:
    """Each user's consecutive events (the log is time-ordered, so per user too)."""
    last: dict[str, Event] = {}
    for event in events:
        if event.user_id in last:
            yield last[event.user_id], event
        last[event.user_id] = event


def test_the_same_seed_gives_the_same_log_and_another_seed_another() -> None:
    first, again = generate(n_users=30, n_items=40, seed=5), generate(n_users=30, n_items=40, seed=5)
    assert first == again
    other = generate(n_users=30, n_items=40, seed=6)
    assert other.events != first.events and other.successor != first.successor


def test_the_log_is_time_ordered_with_bounded_users_and_unique_ids() -> None:
    log = generate(n_users=50, n_items=30, events_per_user=(3, 7), seed=1)
    timestamps = [e.timestamp for e in log.events]
    assert timestamps == sorted(timestamps)
    per_user = Counter(e.user_id for e in log.events)
    assert set(per_user) == {f"u{n}" for n in range(50)} and all(3 <= n <= 7 for n in per_user.values())
    assert len({e.event_id for e in log.events}) == len(log.events)
    assert {e.action for e in log.events} <= {name for name, _ in ECOMMERCE_ACTIONS}
    assert {e.item_id for e in log.events} <= {item.item_id for item in log.items}


def test_duplicates_are_resent_events_with_the_same_id() -> None:
    log = generate(n_users=40, n_items=30, seed=2, duplicate_rate=0.2)
    counts = Counter(e.event_id for e in log.events)
    repeated = [event_id for event_id, n in counts.items() if n > 1]
    assert 0.1 < len(repeated) / len(counts) < 0.3
    for event_id in repeated:
        copies = [e for e in log.events if e.event_id == event_id]
        assert all(copy == copies[0] for copy in copies)  # the very same event, resent


def test_successors_cycle_within_a_category_and_users_follow_them() -> None:
    log = generate(n_users=80, n_items=60, follow=1.0, seed=3)
    category = {item.item_id: item.category for item in log.items}
    assert set(log.successor) == set(category)
    assert sorted(log.successor.values()) == sorted(category)  # a permutation: each item one predecessor
    assert all(category[a] == category[b] and a != b for a, b in log.successor.items())
    assert all(later.item_id == log.successor[earlier.item_id] for earlier, later in _transitions(log.events))

    loose = generate(n_users=80, n_items=60, follow=0.5, seed=3)
    followed = [later.item_id == loose.successor[earlier.item_id] for earlier, later in _transitions(loose.events)]
    assert 0.4 < sum(followed) / len(followed) < 0.7  # follow, plus the odd random pick that lands on it


def test_drift_redraws_the_successors_later_in_the_log() -> None:
    log = generate(n_users=100, n_items=60, follow=1.0, drift_at=0.5, seed=4)
    first, last = log.events[0].timestamp, log.events[-1].timestamp
    quarter = (last - first) // 4
    pairs = list(_transitions(log.events))
    early = [b.item_id == log.successor[a.item_id] for a, b in pairs if b.timestamp < first + quarter]
    late = [b.item_id == log.successor[a.item_id] for a, b in pairs if b.timestamp > last - quarter]
    assert early and all(early)
    assert late and sum(late) / len(late) < 0.3


def test_catalogue_titles_carry_their_category_and_chinese_titles_are_chinese() -> None:
    log = generate(n_users=2, n_items=12, seed=0)
    for item in log.items:
        adjectives, nouns = CATEGORIES[item.category]
        adjective = next(a for a in adjectives if item.title.startswith(a + " "))
        assert item.title.removeprefix(adjective + " ").rsplit(" ", 1)[0] in nouns
        assert item.title.endswith(f" {item.item_id}") and item.attributes["brand"].startswith("Brand")
    chinese = generate(n_users=2, n_items=12, language="zh").items
    assert [item.title for item in chinese[:2]] == ["商品0", "商品1"] and chinese[7].category == "类目1"


@pytest.mark.parametrize("name", ["items.csv", "items.jsonl"])
def test_written_items_read_back_equal(tmp_path: Path, name: str) -> None:
    items = generate(n_users=1, n_items=25, seed=9).items + generate(n_users=1, n_items=3, language="zh").items
    path = write_items(items, tmp_path / "nested" / name)
    assert list(read_items(path)) == items


@pytest.mark.parametrize("name", ["events.csv", "events.jsonl", "events.msgpack"])
def test_written_events_read_back_equal(tmp_path: Path, name: str) -> None:
    log: SyntheticLog = generate(n_users=20, n_items=15, seed=8)
    path = write_events(log.events, tmp_path / name)
    loaded = read_log(path, ActionVocabulary.for_domain("ecommerce"))
    assert loaded.events == log.events and loaded.rejected == []


def test_an_unknown_event_extension_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'\.xml'.*\.csv, \.jsonl or \.msgpack"):
        write_events(generate(n_users=1, n_items=2).events, tmp_path / "events.xml")
    assert not (tmp_path / "events.xml").exists()
