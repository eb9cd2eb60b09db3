"""Validated records become events sharing repeated strings and attribute maps (``sources/_event_builder.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sourceskit import ECOMMERCE, FIXTURES, VIDEO

from streamrec.sources import read_log
from streamrec.sources._event_builder import _load_events


def test_movielens_shares_repeated_values_between_events() -> None:
    log = read_log(FIXTURES / "ml-100k", VIDEO)
    by_rating: dict[str, Mapping[str, Any]] = {}
    for event in log.events:
        shared = by_rating.setdefault(event.attributes["rating"], event.attributes)
        assert shared is event.attributes
    users = [event.user_id for event in log.events if event.user_id == "7"]
    assert users[0] is users[1]



def records(*rows: dict[str, Any], closed: list[bool] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        for n, row in enumerate(rows, 1):
            yield f"log#{n}", {"user_id": "u", "item_id": "i", "action": "view", "timestamp": n, **row}
    finally:
        if closed is not None:
            closed.append(True)


def test_equal_attribute_maps_are_shared_but_never_across_types() -> None:
    events = _load_events(records({"attributes": {"rating": 1}}, {"attributes": {"rating": 1}},
                                  {"attributes": {"rating": 1.0}}, {"attributes": {"rating": True}}),
                          ECOMMERCE, None, [])
    one, again, one_float, true = (e.attributes for e in events)
    assert one is again  # one map for equal values ...
    assert one_float is not one and true is not one and true is not one_float  # ... 1, 1.0 and True stay apart
    assert [type(e.attributes["rating"]) for e in events] == [int, int, float, bool]


def test_unhashable_attributes_are_kept_per_event() -> None:
    events = _load_events(records({"attributes": {"tags": ["a", "b"]}}, {"attributes": {"tags": ["a", "b"]}}),
                          ECOMMERCE, None, [])
    assert events[0].attributes == events[1].attributes == {"tags": ["a", "b"]}
    assert events[0].attributes is not events[1].attributes


def test_ids_and_actions_are_shared_strings() -> None:
    def fresh(text: str) -> str:  # a new string object each time, as a file reader makes them
        return "".join(list(text))

    events = _load_events(records(*({"user_id": fresh("user"), "item_id": fresh("item"), "action": fresh("view")}
                                    for _ in range(2))), ECOMMERCE, None, [])
    assert events[0].user_id == "user" and fresh("user") is not fresh("user")
    assert events[0].user_id is events[1].user_id and events[0].item_id is events[1].item_id
    assert events[0].action is events[1].action


def test_invalid_records_are_rejected_with_their_location_and_the_rest_kept() -> None:
    rejected: list[tuple[str, str]] = []
    events = _load_events(records({}, {"action": "teleport"}, {"timestamp": "soon"}, {}), ECOMMERCE, None, rejected)
    assert [e.timestamp for e in events] == [1, 4]
    assert [location for location, _ in rejected] == ["log#2", "log#3"]
    assert "teleport" in rejected[0][1] and "soon" in rejected[1][1]


def test_a_limit_counts_valid_events_and_closes_the_reader_at_once() -> None:
    closed: list[bool] = []
    rejected: list[tuple[str, str]] = []
    events = _load_events(records({"action": "teleport"}, {}, {}, {}, {}, closed=closed), ECOMMERCE, 2, rejected)
    assert [e.timestamp for e in events] == [2, 3] and len(rejected) == 1
    assert closed == [True]  # the file is shut when the limit is reached, not when the generator is collected
    assert _load_events(records({}), ECOMMERCE, 0, []) == []
