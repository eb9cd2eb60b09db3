"""Candidate generation: a few hundred items per user from cheap sources, ranked afterwards.

For a catalogue too large to score whole (``retrieval.mode``), each user gets the union of:

==============  ===========================================================================
``cooccurrence`` items taken together with the user's recent ones (the index's neighbour rows)
``text``         the nearest items by text to the user's recent items (the LM's view, from an
                 HNSW graph: :mod:`streamrec.ann`), so items nobody has touched can come up
``popular``      the most taken items (decayed counts when ``head.cooccurrence_half_life`` is set)
``trending``     the most taken items over the last ``retrieval.trending_half_life`` events
``new``          the newest items nobody has taken yet, so a brand-new item can be shown
==============  ===========================================================================

in that order of precedence, each source up to its own quota (``retrieval.candidates_*``),
without the user's seen items and items the business rules block; a user they leave short of
``retrieval.k`` gets more popular items. The ranker then scores the
union only (:mod:`streamrec.signals` on ``users x candidates``); :class:`CandidateStats` counts
what each source contributed and how often the item a user took next was among their
candidates (the candidate stage's recall, which bounds the final hit rate).

>>> trending = Trending(half_life=2)
>>> for item in [0, 0, 0, 1, 2, 2, 2, 2]:
...     trending.learn(item)
>>> trending.top(2).tolist()
[2, 0]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from streamrec.ann import TextIndex
from streamrec.config import RetrievalSettings

SOURCES = ("cooccurrence", "text", "popular", "trending", "new")


class CooccurrenceIndex(Protocol):
    def neighbours(self, recent: torch.Tensor, n: int) -> torch.Tensor: ...
    def most_popular(self, n: int, n_items: int) -> torch.Tensor: ...
    def interactions_of(self, items: torch.Tensor) -> torch.Tensor: ...


class Trending:
    """Item counts that halve every ``half_life`` events: what is taken now."""

    def __init__(self, half_life: float) -> None:
        self.growth = 2.0 ** (1.0 / half_life)
        self.increment = 1.0
        self.counts = np.zeros(1024, np.float32)

    def learn(self, item: int) -> None:
        if item >= len(self.counts):
            grown = np.zeros(max(item + 1, 2 * len(self.counts)), np.float32)
            grown[: len(self.counts)] = self.counts
            self.counts = grown
        self.counts[item] += self.increment
        self.increment *= self.growth
        if self.increment > 1e20:
            self.counts /= self.increment
            self.increment = 1.0

    def top(self, n: int) -> torch.Tensor:
        taken = np.flatnonzero(self.counts)
        if len(taken) > n:
            taken = taken[np.argpartition(-self.counts[taken], n - 1)[:n]]
        return torch.from_numpy(taken[np.argsort(-self.counts[taken], kind="stable")].astype(np.int64))


@dataclass
class CandidateStats:
    """Per source: candidates contributed (after de-duplication); and the recall of the stage."""

    contributed: Counter[str] = field(default_factory=Counter)
    users: int = 0
    targets: int = 0  # positive events scored against their user's candidates
    targets_found: int = 0  # ... whose item was among them

    @property
    def recall(self) -> float:
        return self.targets_found / self.targets if self.targets else float("nan")


class CandidateGenerator:
    def __init__(self, settings: RetrievalSettings, cooccurrence: CooccurrenceIndex | None,
                 text: TextIndex | None, trending: Trending | None) -> None:
        self.settings = settings
        self.cooccurrence = cooccurrence
        self.text = text
        self.trending = trending
        self.stats = CandidateStats()

    @property
    def size(self) -> int:
        s = self.settings
        return (s.candidates_cooccurrence + s.candidates_text + s.candidates_popular + s.candidates_trending
                + s.candidates_new)

    def generate(self, recent: torch.Tensor, query: torch.Tensor | None, n_items: int,
                 excluded: Sequence[set[int]], blocked: torch.Tensor) -> torch.Tensor:
        """``(users, size)`` candidate item indices, ``-1`` padded: the sources' union for each
        user with recent positive items ``recent`` (newest first) and text ``query`` vectors."""
        s = self.settings
        n_users = recent.shape[0]
        per_user: list[tuple[str, torch.Tensor]] = []  # (users, n) each
        shared: list[tuple[str, torch.Tensor]] = []  # (n,) the same for everyone
        if self.cooccurrence is not None and s.candidates_cooccurrence:
            per_user.append(("cooccurrence", self.cooccurrence.neighbours(recent, s.candidates_cooccurrence)))
        if self.text is not None and query is not None and s.candidates_text:
            per_user.append(("text", self.text.search(query, s.candidates_text)))
        if self.cooccurrence is not None and s.candidates_popular:
            shared.append(("popular", self.cooccurrence.most_popular(s.candidates_popular, n_items)))
        if self.trending is not None and s.candidates_trending:
            shared.append(("trending", self.trending.top(s.candidates_trending)))
        if s.candidates_new:
            shared.append(("new", self._newest_untaken(s.candidates_new, n_items)))
        blocked_set = set(torch.nonzero(blocked).flatten().tolist()) if blocked.numel() else set()
        out = torch.full((n_users, self.size), -1, dtype=torch.long)
        per_user_lists = [(name, rows.tolist()) for name, rows in per_user]
        shared_lists = [(name, items.tolist()) for name, items in shared]
        fallback: list[int] | None = None  # more popular items, for a user the sources left short of k
        for user in range(n_users):
            chosen: dict[int, None] = {}
            skip = (excluded[user], blocked_set)  # not united: an allow list blocks most of the catalogue
            for name, rows in per_user_lists:
                self._take(chosen, rows[user], skip, name)
            for name, items in shared_lists:
                self._take(chosen, items, skip, name)
            if len(chosen) < s.k and self.cooccurrence is not None:
                if fallback is None:
                    depth = s.k + len(blocked_set) + max(len(e) for e in excluded)
                    fallback = self.cooccurrence.most_popular(min(depth, n_items), n_items).tolist()
                for item in fallback:
                    if len(chosen) >= s.k:
                        break
                    if item not in skip[0] and item not in skip[1] and item not in chosen:
                        chosen[item] = None
                        self.stats.contributed["popular"] += 1
            picked = [i for i in chosen if i < n_items][: self.size]
            out[user, : len(picked)] = torch.tensor(picked, dtype=torch.long)
        self.stats.users += n_users
        return out

    def _take(self, chosen: dict[int, None], items: list[int], skip: tuple[set[int], set[int]], source: str) -> None:
        before = len(chosen)
        seen, blocked = skip
        for item in items:
            if item >= 0 and item not in seen and item not in blocked:
                chosen.setdefault(item)
        self.stats.contributed[source] += len(chosen) - before

    def _newest_untaken(self, n: int, n_items: int) -> torch.Tensor:
        """The ``n`` highest item indices (the most recently added) with no positive event yet,
        among the newest ``50 n`` (so a catalogue whose items have all been taken costs little)."""
        if self.cooccurrence is None:
            return torch.arange(max(n_items - n, 0), n_items).flip(0)
        found: list[int] = []
        end, oldest = n_items, max(n_items - 50 * n, 0)
        while len(found) < n and end > oldest:
            start = max(end - 4 * n, oldest)
            block = torch.arange(start, end)
            untaken = block[self.cooccurrence.interactions_of(block) == 0].flip(0)
            found.extend(untaken[: n - len(found)].tolist())
            end = start
        return torch.tensor(found, dtype=torch.long)

    def observe_targets(self, candidates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Whether each target was among its row's candidates (counted for the recall)."""
        found = (candidates == targets.unsqueeze(1)).any(dim=1)
        self.stats.targets += len(targets)
        self.stats.targets_found += int(found.sum())
        return found
