"""Prequential (test-then-train) scoring of published recommendations.

Before the model learns an event, the most recent recommendation already published for that
user is scored against the event's item. Events of users with no earlier recommendation are
counted but not scored; so are events whose action is not a positive signal (a skip).

>>> score = PrequentialScore(k=10, n_items=lambda: 100)
>>> score.publish("u1", ["a", "b", "c"])
>>> _ = score.observe("u1", "b"), score.observe("u2", "a")
>>> round(score.summary()["hit@10"], 3), score.scored_events, score.events
(1.0, 1, 2)
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Gain:
    """What one scored event earns: hit, ndcg and reciprocal rank at k (all 0 for a miss)."""

    hit: float
    ndcg: float
    rr: float

    @classmethod
    def at(cls, rank: int | None) -> Gain:
        """The gain of the event's item at 0-based ``rank`` in the list (None: not in it).

        >>> Gain.at(0), Gain.at(None).hit
        (Gain(hit=1.0, ndcg=1.0, rr=1.0), 0.0)
        """
        if rank is None:
            return MISS
        return cls(1.0, 1.0 / math.log2(rank + 2), 1.0 / (rank + 1))


MISS = Gain(0.0, 0.0, 0.0)


class LatestRecommendations:
    """Each user's most recently published top-k, as item -> rank, for the ``max_users`` most
    recently served users; :meth:`gain` scores an event against it (test-then-train)."""

    def __init__(self, k: int, max_users: int | None = None) -> None:
        self.k = k
        self.max_users = max_users
        self._ranks: OrderedDict[str, dict[str, int]] = OrderedDict()

    def publish(self, user_id: str, item_ids: Sequence[str]) -> list[str]:
        """Remember the user's new list; returns its top k."""
        top = list(item_ids[: self.k])
        self._ranks[user_id] = {item: rank for rank, item in enumerate(top)}
        if self.max_users is not None:
            self._ranks.move_to_end(user_id)
            while len(self._ranks) > self.max_users:
                self._ranks.popitem(last=False)
        return top

    def forget(self, user_ids: Iterable[str]) -> None:
        for user in user_ids:
            self._ranks.pop(user, None)

    def gain(self, user_id: str, item_id: str) -> Gain | None:
        """The event's gain against the user's latest list; None when the user has none yet."""
        ranks = self._ranks.get(user_id)
        return None if ranks is None else Gain.at(ranks.get(item_id))


class DistinctCount:
    """How many distinct keys were seen: exact up to ``exact_up_to`` keys, then a HyperLogLog
    estimate (2**14 registers, 16 KB; standard error about 0.8 %), so memory stays bounded however
    many users a log holds.

    >>> count = DistinctCount(exact_up_to=2)
    >>> for user in ["a", "b", "a"]:
    ...     count.add(user)
    >>> count.value, count.estimated
    (2, False)
    """

    BITS = 14

    def __init__(self, exact_up_to: int = 200_000) -> None:
        self.exact_up_to = exact_up_to
        self._keys: set[str] | None = set()
        self._registers = np.zeros(1 << self.BITS, dtype=np.uint8)

    @property
    def estimated(self) -> bool:
        return self._keys is None

    @property
    def value(self) -> int:
        if self._keys is not None:
            return len(self._keys)
        m = len(self._registers)
        raw = 0.7213 / (1 + 1.079 / m) * m * m / float(np.sum(np.exp2(-self._registers.astype(np.float64))))
        zeros = int(np.count_nonzero(self._registers == 0))
        return round(m * math.log(m / zeros) if raw <= 2.5 * m and zeros else raw)  # linear counting when small

    def add(self, key: str) -> None:
        if self._keys is not None:
            self._keys.add(key)
            if len(self._keys) <= self.exact_up_to:
                return
            keys, self._keys = self._keys, None
            for old in keys:
                self._register(old)
            return
        self._register(key)

    def _register(self, key: str) -> None:
        hashed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
        bucket, rest = hashed >> (64 - self.BITS), hashed & ((1 << (64 - self.BITS)) - 1)
        rank = (64 - self.BITS) - rest.bit_length() + 1  # position of the first 1 bit
        if rank > self._registers[bucket]:
            self._registers[bucket] = rank


class PrequentialScore:
    """Totals over a whole replay: hit, ndcg and mrr at k, coverage, events and users.

    Memory is bounded: the latest recommendation is kept for the ``max_users`` most recently served
    users (a user evicted from the windows is scored again once served again), and users are counted
    with :class:`DistinctCount`.
    """

    def __init__(self, k: int, n_items: Callable[[], int], max_users: int | None = None) -> None:
        self.k = k
        self.n_items = n_items
        self._latest = LatestRecommendations(k, max_users)
        self._recommended: set[str] = set()
        self.events = 0
        self.scored_events = 0
        self.hits = 0
        self.ndcg = 0.0
        self.mrr = 0.0
        self.users = DistinctCount(max_users or 200_000)

    def observe(self, user_id: str, item_id: str, scored: bool = True) -> float | None:
        """Score one event against the user's latest recommendation; returns the hit (or None)."""
        self.events += 1
        self.users.add(user_id)
        gain = self._latest.gain(user_id, item_id) if scored else None
        if gain is None:
            return None
        self.scored_events += 1
        if gain.hit:
            self.hits += 1
            self.ndcg += gain.ndcg
            self.mrr += gain.rr
        return gain.hit

    def publish(self, user_id: str, item_ids: Sequence[str]) -> None:
        self._recommended.update(self._latest.publish(user_id, item_ids))

    def summary(self) -> dict[str, Any]:
        n = max(self.scored_events, 1)
        return {
            f"hit@{self.k}": self.hits / n,
            f"ndcg@{self.k}": self.ndcg / n,
            f"mrr@{self.k}": self.mrr / n,
            f"coverage@{self.k}": len(self._recommended) / max(self.n_items(), 1),
            "events": self.events,
            "scored_events": self.scored_events,
            "users": self.users.value,
            "users_estimated": self.users.estimated,
        }
