"""What the harness knows about the stream so far: the catalogue, per-item and per-user
counts, and each user's seen items. Every model is scored and excluded from the same state.

Slice flags for an event are read *before* the event's micro-batch is learned, so "so far"
means "in what the models have learned": an item with fewer than 5 interactions in earlier
batches is cold, whatever else is in its own batch.

>>> state = StreamState(["a", "b"])
>>> state.learn([Event("u1", "a", "view", 1), Event("u2", "a", "view", 2), Event("u1", "c", "view", 3)])
>>> state.n_items, state.item_count("a"), state.user_count("u1"), sorted(state.seen("u1"))
(3, 2, 2, ['a', 'c'])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence

import numpy as np

from harness.quality import COLD_ITEM_INTERACTIONS, HEAD_SHARE, NEW_USER_EVENTS, head_threshold
from streamrec.catalog import ItemIds
from streamrec.events import Event


class StreamState:
    """Catalogue, counts and seen items, updated one micro-batch at a time.

    ``exclude_actions`` mirrors ``retrieval.exclude_actions``: only events with these actions
    make an item "seen" (``None``: every action), as in the pipeline's window store.
    """

    def __init__(self, catalogue: Iterable[str] = (), exclude_actions: Collection[str] | None = None) -> None:
        self.exclude_actions = None if exclude_actions is None else frozenset(exclude_actions)
        self._ids = ItemIds()
        self._item_counts = np.zeros(1024, dtype=np.int64)
        self._user_counts: defaultdict[str, int] = defaultdict(int)
        self._seen: defaultdict[str, set[str]] = defaultdict(set)
        self._head_at: float | None = None
        for item_id in catalogue:
            self.index_of(item_id)

    @property
    def n_items(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """Item ids in index order."""
        return self._ids.ids

    def index_of(self, item_id: str) -> int:
        index = self._ids.add(item_id)
        if index >= len(self._item_counts):  # a new item past the room
            self._item_counts = np.concatenate([self._item_counts, np.zeros_like(self._item_counts)])
        return index

    def learn(self, events: Sequence[Event]) -> None:
        for event in events:
            index = self.index_of(event.item_id)  # first: a new item may grow (replace) the counts array
            self._item_counts[index] += 1
            self._user_counts[event.user_id] += 1
            if self.exclude_actions is None or event.action in self.exclude_actions:
                self._seen[event.user_id].add(event.item_id)
        self._head_at = None

    def item_count(self, item_id: str) -> int:
        index = self._ids.find(item_id)
        return 0 if index is None else int(self._item_counts[index])

    def user_count(self, user_id: str) -> int:
        return self._user_counts.get(user_id, 0)

    def seen(self, user_id: str) -> set[str]:
        return self._seen.get(user_id, set())

    def users(self) -> list[str]:
        return list(self._user_counts)

    def flags(self, event: Event) -> tuple[bool, bool, bool, bool]:
        """(cold item, new user, long-tail item, unseen item) for ``event`` against what was
        learned so far (the order of :data:`~harness.quality.SLICES`)."""
        if self._head_at is None:
            self._head_at = head_threshold(self._item_counts[: self.n_items], HEAD_SHARE)
        count = self.item_count(event.item_id)
        return (count < COLD_ITEM_INTERACTIONS, self.user_count(event.user_id) < NEW_USER_EVENTS,
                count < self._head_at, count == 0)
