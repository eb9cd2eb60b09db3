"""The one protocol every evaluated model obeys, and the shared machinery of score-vector models.

A model learns micro-batches of events as they arrive and, at the end of each, publishes a
top-``k`` for the users the batch touched. The harness owns exclusion: it passes each user's
seen items, so every model excludes exactly the same items.

>>> from harness.baselines import Popularity
>>> model = Popularity(["a", "b", "c"])
>>> model.learn([Event("u1", "b", "view", 1), Event("u2", "b", "view", 2), Event("u2", "c", "view", 3)])
>>> model.recommend(["u1", "u3"], k=2, exclude=[{"b"}, set()])
[['c', 'a'], ['b', 'c']]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from streamrec.catalog import ItemIds
from streamrec.events import Event


@runtime_checkable
class StreamingModel(Protocol):
    """What the harness needs from a model: learn as events arrive, rank on demand."""

    name: str

    def learn(self, events: Sequence[Event]) -> None:
        """Take in one micro-batch of events, in time order."""
        ...

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Sequence[Collection[str]]) -> list[list[str]]:
        """Top-``k`` item ids for each user over the whole catalogue, never an item in ``exclude``."""
        ...


def top_k(scores: np.ndarray, k: int, excluded: Iterable[int] = ()) -> list[int]:
    """Indices of the ``k`` best scores, best first; ties go to the lower index (catalogue order).

    Excluded indices and ``-inf`` scores are never returned.

    >>> top_k(np.array([1.0, 3.0, 3.0, 0.0, 2.0]), 3, excluded=[2])
    [1, 4, 0]
    """
    scores = np.nan_to_num(np.array(scores, dtype=np.float64), nan=-np.inf)
    excluded = list(excluded)
    if excluded:
        scores[excluded] = -np.inf
    k = min(k, len(scores))
    if k <= 0:
        return []
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    candidates = np.flatnonzero(scores >= kth)
    order = np.lexsort((candidates, -scores[candidates]))  # by score descending, then index
    return [int(i) for i in candidates[order][:k] if np.isfinite(scores[i])]


class ScoringModel(ABC):
    """Base of models that score every catalogue item for a user with numpy.

    Keeps the catalogue's item index (growing as unseen items arrive) and turns score rows
    into top-``k`` lists. Subclasses implement ``learn`` and ``scores``; ``_grow`` is called
    when the catalogue outgrows their arrays.

    ``weights`` are the action weights (``ActionVocabulary.weights``): events whose action
    weighs 0 or less (a skip) are context, never positive signal. Without weights every
    event counts.
    """

    name = "scoring"

    def __init__(self, catalogue: Iterable[str] = (), weights: Mapping[str, float] | None = None) -> None:
        self.weights = weights
        self._ids = ItemIds()
        self._capacity = 0
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
        if index >= self._capacity:  # a new item past the room
            self._capacity = max(1024, 2 * self._capacity, index + 1)
            self._grow(self._capacity)
        return index

    def weight(self, event: Event) -> float:
        return 1.0 if self.weights is None else float(self.weights.get(event.action, 0.0))

    def _grow(self, capacity: int) -> None:  # noqa: B027 - an optional hook, not abstract
        """Resize per-item arrays to ``capacity`` rows (new rows zero)."""

    @abstractmethod
    def scores(self, user_ids: Sequence[str]) -> np.ndarray:
        """``(len(user_ids), n_items)`` scores, higher is better."""

    @abstractmethod
    def learn(self, events: Sequence[Event]) -> None:
        """Take in one micro-batch of events, in time order."""

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Sequence[Collection[str]]) -> list[list[str]]:
        if not user_ids:
            return []
        rows = self.scores(user_ids)
        lists = []
        for row, seen in zip(rows, exclude, strict=True):
            excluded = [i for i in map(self._ids.find, seen) if i is not None]
            lists.append([self.ids[i] for i in top_k(row, k, excluded)])
        return lists


def grown(array: np.ndarray, size: int, axes: int = 1) -> np.ndarray:
    """``array`` zero-padded to ``size`` along its first ``axes`` axes.

    >>> grown(np.ones((2, 2)), 3, axes=2).sum(), grown(np.ones((2, 4)), 3).shape
    (np.float64(4.0), (3, 4))
    """
    shape = (size,) * axes + array.shape[axes:]
    out = np.zeros(shape, dtype=array.dtype)
    out[tuple(slice(0, n) for n in array.shape)] = array
    return out
