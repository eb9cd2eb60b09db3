"""A user's cached *view*: the events its KV cache reads, and when a new window extends it.

The encoder keeps, per user, the sequence of events it has encoded since its last reset, and
the user's vector is the model's reading of exactly that sequence (from position 0, chunked
token ids, see :mod:`streamrec.encoding.event_inputs`).

* Events are identified by ``(timestamp, event_id, item_id, action)``. A window passed in is
  an *extension* of the view when, after dropping up to ``S`` (``slack_events``) of the
  view's oldest events, the rest of the view is a prefix of the window; the window's events
  after that prefix are appended (only their positions are run through the model). A view
  that a reset had to start after the window's oldest events (they did not fit the position
  budget, below) is *partial*: it extends a window that holds the whole view as a run, with
  only new events after it (older events before the run, even late ones, stay out, as a reset
  would leave them out).
* So the view holds the store's window (its last N events, N = ``window.max_events``) plus
  at most S older events that already left it (by count or by horizon): between N and N+S
  events once the user has N, fewer when N events do not fit the position budget.
* Reset: when the window is not an extension (events dropped beyond the slack, a late event
  inserted before the newest, more than N new events at once, a restore), when the view
  would pass N+S events or the model's position budget P (``min(encoder.max_length,
  n_positions)``), when an event's text changed in the catalogue, or when the user has no
  cache (first sight, ``forget``, LRU eviction). A reset keeps the newest events that fit
  in N events and ``P * N // (N + S)`` positions (headroom for the slack; fewer than N events
  when N do not fit), whole events only, and encodes them once from scratch; a single event
  longer than that keeps its last tokens.
* Without a cache (``kv_cache_bytes=0``) every call is a reset: the full re-encode.

>>> overlap([("a",), ("b",), ("c",)], [("b",), ("c",), ("d",)])  # drop "a", append "d"
(1, 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from streamrec.encoding.kv_cache import KVCache
from streamrec.events import Event

EventKey = tuple[int, str | None, str, str]


def event_key(event: Event) -> EventKey:
    return (event.timestamp, event.event_id, event.item_id, event.action)


@dataclass
class View:
    """What one user's cache reads: its events, their texts and sizes, the cache and the vector."""

    keys: list[EventKey]
    texts: list[str]  # each event's chunk text, to notice catalogue text changes
    sizes: list[int]  # positions per event
    kv: KVCache
    vector: torch.Tensor
    hidden_sum: torch.Tensor | None  # for mean pooling
    catalog_changes: int
    partial: bool  # a reset left the window's oldest events out for the position budget


@dataclass
class Job:
    """One user's work in a call: a reset (the whole new view) or an append (the new events)."""

    row: int
    user: str
    events: list[Event]  # reset: the whole new view; append: the new events
    texts: list[str]
    ids: list[list[int]] | None  # text mode: token ids per event
    view: View | None  # append: the view extended
    reason: str | None  # reset reason, None for an append
    partial: bool = False  # reset: the window's oldest events did not fit

    @property
    def positions(self) -> int:
        return sum(len(i) for i in self.ids) if self.ids is not None else len(self.events)


def overlap(view: list[EventKey], window: list[EventKey], partial: bool = False) -> tuple[int, int] | None:
    """``(start, offset)`` with ``view[start:]`` (not empty) equal to ``window[offset:offset + len(view) - start]``.

    The smallest ``start`` with ``offset`` 0 (the rest of the view is a prefix of the window);
    a partial view may also sit whole inside the window (``start`` 0, any ``offset``).
    """
    if not window or not view:
        return None
    if partial:
        offset = next((i for i, key in enumerate(window) if key == view[0]), None)
        if offset is not None and window[offset:offset + len(view)] == view:
            return 0, offset
    for start in range(len(view)):
        if view[start] == window[0] and view[start:] == window[:len(view) - start]:
            return start, 0
    return None
