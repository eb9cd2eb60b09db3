"""Views: how a new window lines up with the events a user's cache already reads."""

from __future__ import annotations

import torch

from streamrec.encoding.kv_cache import UserKV
from streamrec.encoding.views import EventKey, Job, View, event_key, overlap
from streamrec.events import Event


def keys(*names: str) -> list[EventKey]:
    return [(n, name, name, "view") for n, name in enumerate(names)]


def test_an_event_is_identified_by_time_id_item_and_action() -> None:
    event = Event("u", "7", "cart", 1_000, "e1", {"page": "home"})
    assert event_key(event) == (1_000, "e1", "7", "cart")
    assert event_key(Event("someone else", "7", "cart", 1_000, "e1", {"page": "search"})) == event_key(event)
    assert event_key(Event("u", "7", "view", 1_000, "e1")) != event_key(event)  # another action: another event
    assert event_key(Event("u", "7", "cart", 1_000)) == (1_000, None, "7", "cart")


def test_a_window_that_continues_the_view_overlaps_at_the_dropped_count() -> None:
    view = keys("a", "b", "c", "d")
    new = (9, "e", "e", "view")
    assert overlap(view, view) == (0, 0)  # nothing new
    assert overlap(view, [*view, new]) == (0, 0)  # one appended
    assert overlap(view, [*view[2:], new]) == (2, 0)  # two slid out of the window, one appended
    assert overlap(view, view[3:]) == (3, 0)


def test_a_window_that_does_not_continue_the_view_has_no_overlap() -> None:
    view = keys("a", "b", "c")
    late = (1, "late", "x", "view")
    assert overlap(view, [view[0], late, *view[1:]]) is None  # an event inserted before the newest
    assert overlap(view, keys("x", "y")) is None
    assert overlap(view, view[:2]) is None  # the newest event vanished
    assert overlap([], view) is None and overlap(view, []) is None


def test_the_smallest_slide_wins_when_events_repeat() -> None:
    same = (5, "same", "i", "view")
    view = [same, same, same]
    assert overlap(view, [same, same, same, (6, "new", "j", "view")]) == (0, 0)
    assert overlap(view, [same, same]) == (1, 0)


def test_a_partial_view_may_sit_anywhere_inside_the_window() -> None:
    window = keys("a", "b", "c", "d", "e", "f")
    view = window[2:5]  # a reset kept only c, d, e (the position budget), the window still starts at a
    assert overlap(view, window) is None  # a full view must be a prefix of the window
    assert overlap(view, window, partial=True) == (0, 2)
    assert overlap(view, window[:4], partial=True) is None  # e is no longer in the window
    assert overlap(view, window[3:], partial=True) == (1, 0)  # slid past the view's start: as for any view


def test_a_jobs_positions_are_its_tokens_in_text_mode_and_its_events_in_item_mode() -> None:
    events = [Event("u", str(n), "view", n) for n in range(3)]
    text = Job(0, "u", events, ["viewed A", "; viewed B", "; viewed C"], [[1, 2, 3], [4, 5], [6]], None, "new")
    assert text.positions == 6 and text.reason == "new" and not text.partial
    item = Job(1, "u", events, ["A", "B", "C"], None, None, "slack", partial=True)
    assert item.positions == 3
    view = View(keys("a"), ["viewed A"], [3], UserKV(16), torch.zeros(4), None, 0, False)
    append = Job(2, "u", events[:1], ["; viewed D"], [[7, 8]], view, None)
    assert append.positions == 2 and append.view is view and append.reason is None
