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

import math
from collections.abc import Callable, Sequence
from typing import Any


class PrequentialScore:
    def __init__(self, k: int, n_items: Callable[[], int]) -> None:
        self.k = k
        self.n_items = n_items
        self._latest: dict[str, dict[str, int]] = {}  # user -> item -> rank
        self._recommended: set[str] = set()
        self.events = 0
        self.scored_events = 0
        self.hits = 0
        self.ndcg = 0.0
        self.mrr = 0.0
        self.users: set[str] = set()

    def observe(self, user_id: str, item_id: str, scored: bool = True) -> float | None:
        """Score one event against the user's latest recommendation; returns the hit (or None)."""
        self.events += 1
        self.users.add(user_id)
        latest = self._latest.get(user_id)
        if latest is None or not scored:
            return None
        self.scored_events += 1
        rank = latest.get(item_id)
        if rank is None:
            return 0.0
        self.hits += 1
        self.ndcg += 1.0 / math.log2(rank + 2)
        self.mrr += 1.0 / (rank + 1)
        return 1.0

    def publish(self, user_id: str, item_ids: Sequence[str]) -> None:
        top = item_ids[: self.k]
        self._latest[user_id] = {item: rank for rank, item in enumerate(top)}
        self._recommended.update(top)

    def summary(self) -> dict[str, Any]:
        n = max(self.scored_events, 1)
        return {
            f"hit@{self.k}": self.hits / n,
            f"ndcg@{self.k}": self.ndcg / n,
            f"mrr@{self.k}": self.mrr / n,
            f"coverage@{self.k}": len(self._recommended) / max(self.n_items(), 1),
            "events": self.events,
            "scored_events": self.scored_events,
            "users": len(self.users),
        }
