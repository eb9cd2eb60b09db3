"""Streaming baselines: each learns as events arrive and ranks the whole catalogue with numpy.

* :class:`Popularity` - interactions so far.
* :class:`RecentPopularity` - interactions decayed exponentially in event time.
* :class:`Markov` - first-order item-to-item transitions from the user's last item.
* :class:`CooccurrenceKNN` - item-item co-occurrence over the user's recent items, with
  recent items weighing more.

Ties (and users a model knows nothing about) fall back to popularity, so every list is full.

>>> model = Markov(["a", "b", "c"])
>>> model.learn([Event("u1", "a", "view", 1), Event("u1", "b", "view", 2), Event("u2", "a", "view", 3)])
>>> model.recommend(["u2"], k=2, exclude=[{"a"}])
[['b', 'c']]
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from harness.models import ScoringModel, grown
from streamrec.events import Event
from streamrec.ranker import boost_cold

#: Popularity added to every score, scaled below the smallest real score step, so that it
#: only breaks ties and fills lists.
_TIE_BREAK = 1e-6


class Popularity(ScoringModel):
    """Most interacted-with items so far (positive events only)."""

    name = "popularity"

    def __init__(self, catalogue: Iterable[str] = (), weights: Mapping[str, float] | None = None) -> None:
        self.counts = np.zeros(0)
        super().__init__(catalogue, weights)

    def _grow(self, capacity: int) -> None:
        self.counts = grown(self.counts, capacity)

    def learn(self, events: Sequence[Event]) -> None:
        for event in events:
            index = self.index_of(event.item_id)
            if self.weight(event) > 0:
                self.counts[index] += 1

    def popularity(self) -> np.ndarray:
        """Counts scaled into [0, 1): a tie-break for other models."""
        counts = self.counts[: self.n_items]
        return counts / (counts.max() + 1.0) if len(counts) else counts

    def scores(self, user_ids: Sequence[str]) -> np.ndarray:
        return np.tile(self.counts[: self.n_items], (len(user_ids), 1))


class RecentPopularity(ScoringModel):
    """Popularity where an interaction's weight halves every ``half_life_hours`` of event time.

    >>> model = RecentPopularity(["old", "new"], half_life_hours=1.0)
    >>> model.learn([Event("u", "old", "view", 0), Event("u", "old", "view", 1),
    ...              Event("u", "new", "view", 3_600_000 * 3)])
    >>> model.recommend(["v"], k=2, exclude=[()])
    [['new', 'old']]
    """

    name = "recent-popularity"

    def __init__(self, catalogue: Iterable[str] = (), weights: Mapping[str, float] | None = None,
                 half_life_hours: float = 168.0) -> None:
        self.half_life_hours = half_life_hours
        self.decayed = np.zeros(0)
        self._now: int | None = None  # event time (ms) the scores are decayed to
        super().__init__(catalogue, weights)

    def _grow(self, capacity: int) -> None:
        self.decayed = grown(self.decayed, capacity)

    def learn(self, events: Sequence[Event]) -> None:
        if not events:
            return
        half_life_ms = self.half_life_hours * 3_600_000
        now = max(e.timestamp for e in events)
        if self._now is not None:
            now = max(now, self._now)
            self.decayed *= 0.5 ** ((now - self._now) / half_life_ms)
        self._now = now
        for event in events:
            index = self.index_of(event.item_id)
            if self.weight(event) > 0:
                self.decayed[index] += 0.5 ** ((now - event.timestamp) / half_life_ms)

    def scores(self, user_ids: Sequence[str]) -> np.ndarray:
        return np.tile(self.decayed[: self.n_items], (len(user_ids), 1))


class Markov(Popularity):
    """First-order transitions: what followed the user's last item, most often first.

    A transition is counted between a user's consecutive events (the second one positive).
    """

    name = "markov"

    def __init__(self, catalogue: Iterable[str] = (), weights: Mapping[str, float] | None = None) -> None:
        self.transitions: defaultdict[int, dict[int, float]] = defaultdict(dict)
        self.last_item: dict[str, int] = {}
        super().__init__(catalogue, weights)

    def learn(self, events: Sequence[Event]) -> None:
        for event in events:
            index = self.index_of(event.item_id)
            if self.weight(event) > 0:
                self.counts[index] += 1
                previous = self.last_item.get(event.user_id)
                if previous is not None and previous != index:
                    successors = self.transitions[previous]
                    successors[index] = successors.get(index, 0.0) + 1.0
            self.last_item[event.user_id] = index

    def scores(self, user_ids: Sequence[str]) -> np.ndarray:
        rows = np.tile(_TIE_BREAK * self.popularity(), (len(user_ids), 1))
        for row, user in enumerate(user_ids):
            last = self.last_item.get(user)
            successors = self.transitions.get(last) if last is not None else None
            if successors:
                rows[row, list(successors)] += np.fromiter(successors.values(), dtype=np.float64)
        return rows


class CooccurrenceKNN(Popularity):
    """Item-item kNN over the user's last ``history`` items, the most recent weighing most.

    Two items co-occur when one user takes both within ``history`` positive events of each
    other. Similarity is the cosine of co-occurrence, ``c(i, j) / sqrt(n(i) n(j))``, or with
    ``alpha`` the asymmetric cosine ``c(i, j) / (n(i)**alpha n(j)**(1 - alpha))`` (above 0.5 it
    favours popular candidates ``j``). A user's score for item ``j`` is
    ``sum_p decay**p * sim(recent[p], j)``, position 0 the newest. ``cold_boost`` gives items
    with fewer than ``cold_below`` interactions the new-item exposure streamrec's
    ``retrieval.cold_boost`` gives (:func:`streamrec.ranker.boost_cold`), for like-for-like
    comparisons.

    >>> model = CooccurrenceKNN(["a", "b", "c", "d"], history=2, decay=0.5)
    >>> model.learn([Event("u1", "a", "view", 1), Event("u1", "b", "view", 2),
    ...              Event("u2", "c", "view", 3), Event("u2", "d", "view", 4),
    ...              Event("u3", "c", "view", 5), Event("u3", "a", "view", 6)])
    >>> model.recommend(["u3"], k=2, exclude=[{"a", "c"}])  # b (with a, newest) beats d (with c)
    [['b', 'd']]
    """

    name = "cooccurrence-knn"

    def __init__(self, catalogue: Iterable[str] = (), weights: Mapping[str, float] | None = None,
                 history: int = 10, decay: float = 0.8, max_items: int = 20_000, alpha: float = 0.5,
                 cold_boost: float = 0.0, cold_below: int = 5) -> None:
        self.history = history
        self.decay = decay
        self.alpha = alpha
        self.cold_boost = cold_boost
        self.cold_below = cold_below
        self.max_items = max_items
        self.cooccurrence = np.zeros((0, 0), dtype=np.float32)
        self.recent: dict[str, deque[int]] = {}
        super().__init__(catalogue, weights)

    def index_of(self, item_id: str) -> int:
        index = super().index_of(item_id)
        if index >= self.cooccurrence.shape[0]:
            if index >= self.max_items:
                raise MemoryError(
                    f"cooccurrence-knn keeps a dense items x items matrix; the catalogue has {index + 1} items, "
                    f"more than max_items={self.max_items} (raise it if memory allows, or leave the model out)")
            # grown by doubling like the other arrays, but never past max_items (16.9k items fit under 20k)
            self.cooccurrence = grown(self.cooccurrence, min(max(1024, 2 * index), self.max_items), axes=2)
        return index

    def learn(self, events: Sequence[Event]) -> None:
        for event in events:
            index = self.index_of(event.item_id)
            if self.weight(event) <= 0:
                continue
            self.counts[index] += 1
            others = self.partners(event.user_id, index)
            self.cooccurrence[others, index] += 1.0
            self.cooccurrence[index, others] += 1.0
            self.remember(event.user_id, index)

    def partners(self, user_id: str, index: int) -> list[int]:
        """The items a new positive event on ``index`` co-occurs with: the user's recent ones."""
        return [i for i in set(self.recent.get(user_id, ())) if i != index]

    def evidence(self, user_id: str, recent: list[int], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The co-occurrence rows of the user's recent items and the item counts that score them."""
        return self.cooccurrence[recent, : self.n_items], counts

    def remember(self, user_id: str, index: int) -> None:
        """Make ``index`` the user's newest recent item (at most ``history`` kept, no repeats)."""
        recent = self.recent.setdefault(user_id, deque(maxlen=self.history))
        if index in recent:
            recent.remove(index)
        recent.appendleft(index)

    def scores(self, user_ids: Sequence[str]) -> np.ndarray:
        n = self.n_items
        rows = np.tile(_TIE_BREAK * self.popularity(), (len(user_ids), 1))
        counts = np.maximum(self.counts[:n], 1.0)
        for row, user in enumerate(user_ids):
            recent = list(self.recent.get(user, ()))
            if not recent:
                continue
            position_weight = self.decay ** np.arange(len(recent))
            cooccurrence, user_counts = self.evidence(user, recent, counts)
            similar = cooccurrence / user_counts[recent, None] ** self.alpha / user_counts[None, :] ** (
                1.0 - self.alpha)
            rows[row] += position_weight @ similar
        if self.cold_boost:
            cold = torch.from_numpy(self.counts[:n] < self.cold_below)
            rows = boost_cold(torch.from_numpy(rows), cold, self.cold_boost).numpy()
        return rows

