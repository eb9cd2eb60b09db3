"""Item-item co-occurrence learned from the stream: the collaborative signal beside the head.

Two items co-occur when one user takes both within ``history`` positive events of each other.
Their similarity is the cosine of co-occurrence, ``c(i, j) / sqrt(n(i) n(j))``; a user's score
for item ``j`` is ``sum_p decay**p * sim(recent[p], j)`` over the user's recent positive items,
position 0 the newest. This is the co-occurrence kNN that streaming systems run as their strong
baseline; streamrec keeps it as a feature that the ranker blends with the head
(:mod:`streamrec.ranker`), so the language model adds to it instead of competing with it.

The matrix is dense (``capacity x capacity`` float32, grown by doubling): 20k items take
1.6 GB. It never grows past ``max_items`` (``head.cooccurrence_max_items``): a catalogue that
starts larger is a configuration error, and items that arrive later beyond the cap get no
co-occurrence (they score 0 on it; counted in :attr:`ignored`, logged once) while the head
still ranks them. Catalogues that large need a sparse index, which streamrec does not have yet.

>>> index = ItemCooccurrence(history=2, decay=0.5)
>>> index.learn([], 0); index.learn([0], 1)           # one user: item 0, then item 1
>>> index.learn([], 2); index.learn([2], 0)           # another: item 2, then item 0
>>> [round(x, 3) for x in index.scores(torch.tensor([[0, -1]]), 3)[0].tolist()]
[0.0, 0.707, 0.707]
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from streamrec.checkpoint import load_tensors, save_tensors
from streamrec.errors import ConfigError

log = logging.getLogger(__name__)
FORMAT = "streamrec-cooccurrence-1"


class ItemCooccurrence:
    def __init__(self, history: int = 10, decay: float = 0.8, capacity: int = 1024, max_items: int = 20_000,
                 half_life: float | None = None, alpha: float = 0.5) -> None:
        if capacity > max_items:
            raise ConfigError(f"the catalogue has {capacity} items, more than the co-occurrence index holds "
                              f"(head.cooccurrence_max_items={max_items}, a dense item x item matrix): raise "
                              "it if memory allows (4 bytes x items^2), or set head.cooccurrence_history: 0")
        self.history = history
        self.decay = decay
        self.alpha = alpha
        self.max_items = max_items
        # forgetting: each learned event weighs 2**(1/half_life) times the one before (all rows
        # share the scale, so cosines of the decayed counts need no pass over the matrix)
        self.growth = 2.0 ** (1.0 / half_life) if half_life else 1.0
        self.increment = 1.0
        self.ignored = 0  # events of items beyond max_items
        self._warned = False
        self.counts = torch.zeros(0)
        self.matrix = torch.zeros(0, 0)
        self.grow(capacity)

    @property
    def capacity(self) -> int:
        return int(self.counts.shape[0])

    def grow(self, n_items: int) -> None:
        """Make room for item indices below ``n_items``, up to ``max_items``."""
        if n_items <= self.capacity:
            return
        capacity = min(max(n_items, 2 * self.capacity), self.max_items)
        if n_items > self.max_items and not self._warned:
            self._warned = True
            log.warning("the catalogue has grown past head.cooccurrence_max_items=%d: items beyond it get no "
                        "co-occurrence score", self.max_items)
        if capacity <= self.capacity:
            return
        counts, matrix = torch.zeros(capacity), torch.zeros(capacity, capacity)
        n = self.capacity
        counts[:n] = self.counts
        matrix[:n, :n] = self.matrix
        self.counts, self.matrix = counts, matrix

    def learn(self, recent: list[int], item: int) -> None:
        """A user with positive items ``recent`` (newest first) took ``item``."""
        self.grow(item + 1)
        if item >= self.capacity:
            self.ignored += 1
            return
        step = self.increment
        self.counts[item] += step
        others = [i for i in dict.fromkeys(recent[: self.history]) if i != item and 0 <= i < self.capacity]
        if others:
            self.matrix[others, item] += step
            self.matrix[item, others] += step
        self.increment *= self.growth
        if self.increment > 1e20:  # rescale everything before float32 runs out of range
            self.counts /= self.increment
            self.matrix /= self.increment
            self.increment = 1.0

    def pairs(self, items: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """``(len(items), len(others))`` co-occurrence counts (decay applied, 0 beyond the cap)."""
        n = self.capacity
        inside = (items < n).unsqueeze(1) & (others < n).unsqueeze(0)
        counts = self.matrix[items.clamp(max=n - 1)][:, others.clamp(max=n - 1)] / self.increment
        return counts * inside

    def scores(self, recent: torch.Tensor, n_items: int) -> torch.Tensor:
        """``(users, n_items)`` scores for users whose recent items are the rows of ``recent``
        (newest first, ``-1`` padded; at most ``history`` columns are read)."""
        self.grow(n_items)
        n = min(n_items, self.capacity)
        recent = recent[:, : self.history]
        present = ((recent >= 0) & (recent < n)).float()
        index = recent.clamp(min=0, max=n - 1)
        counts = self.counts[:n].clamp(min=self.increment)
        weights = present * self.decay ** torch.arange(recent.shape[1], dtype=torch.float)
        weights = weights / counts[index] ** self.alpha  # (users, history)
        rows = self.matrix[index, :n]  # (users, history, n)
        scores = torch.einsum("uh,uhn->un", weights, rows) / counts ** (1.0 - self.alpha)
        return torch.nn.functional.pad(scores, (0, n_items - n))

    def interactions(self, n_items: int) -> torch.Tensor:
        """Each item's (decayed) positive events so far, ``(n_items,)``; 0 beyond the cap."""
        self.grow(n_items)
        counts = self.counts[:n_items] / self.increment
        return torch.nn.functional.pad(counts, (0, n_items - len(counts)))

    def popularity(self, n_items: int) -> torch.Tensor:
        """``log(1 + count)`` of each item's (decayed) positive events, as a ``(1, n_items)`` row."""
        return torch.log1p(self.interactions(n_items)).unsqueeze(0)

    def save(self, path: str | Path, item_ids: list[str]) -> None:
        """Write the index atomically; ``item_ids`` name its rows (the catalogue's order)."""
        n = len(item_ids)
        save_tensors(path, {"counts": self.counts[:n], "matrix": self.matrix[:n, :n]}, FORMAT,
                     {"item_ids": json.dumps(item_ids)})

    def load(self, path: str | Path, index_of: Callable[[str], int]) -> None:
        """Load a saved index, its rows moved to the live catalogue's indices."""
        tensors, metadata = load_tensors(path, FORMAT, "co-occurrence index")
        rows = torch.tensor([index_of(i) for i in json.loads(metadata["item_ids"])], dtype=torch.long)
        self.grow(int(rows.max()) + 1 if len(rows) else 0)
        kept = rows < self.capacity  # rows beyond the cap (a smaller max_items now) are dropped
        self.counts.zero_()
        self.matrix.zero_()
        self.counts[rows[kept]] = tensors["counts"][kept]
        self.matrix[rows[kept].unsqueeze(1), rows[kept].unsqueeze(0)] = tensors["matrix"][kept][:, kept]
