"""Item-item co-occurrence learned from the stream: the collaborative signal beside the head.

Two items co-occur when one user takes both within ``history`` positive events of each other.
Their similarity is the cosine of co-occurrence, ``c(i, j) / sqrt(n(i) n(j))``; a user's score
for item ``j`` is ``sum_p decay**p * sim(recent[p], j)`` over the user's recent positive items,
position 0 the newest. This is the co-occurrence kNN that streaming systems run as their strong
baseline; streamrec keeps it as a feature that the ranker blends with the head
(:mod:`streamrec.ranker`), so the language model adds to it instead of competing with it.

The matrix is dense (``capacity x capacity`` float32, grown by doubling): 20k items take
1.6 GB. It never grows past ``max_items`` (``head.cooccurrence_max_items``). Larger catalogues
use :class:`~streamrec.sparse_cooccurrence.SparseCooccurrence` (each item's top neighbours,
memory linear in items): :func:`make_index` picks one by ``head.cooccurrence_index``, and with
``auto`` the pipeline moves a dense index that the catalogue outgrew to a sparse one
(:func:`outgrown`). A dense index forced past its cap ignores later items (they score 0 on it;
counted in :attr:`ignored`, logged once) while the head still ranks them.

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

from streamrec.checkpoint import checked, load_tensors, save_tensors
from streamrec.config import HeadSettings
from streamrec.errors import ConfigError
from streamrec.sparse_cooccurrence import SparseCooccurrence

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
        """``(..., len(items), len(others))`` co-occurrence counts of ``items`` ``(..., i)`` with
        ``others`` ``(..., o)`` (decay applied; 0 for ``-1`` and beyond the cap)."""
        n = self.capacity
        inside = ((items >= 0) & (items < n)).unsqueeze(-1) & ((others >= 0) & (others < n)).unsqueeze(-2)
        cells = self.matrix[items.clamp(0, n - 1).unsqueeze(-1), others.clamp(0, n - 1).unsqueeze(-2)]
        return cells / self.increment * inside

    def _recent_weights(self, recent: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For the first ``n`` items: each user's recent item rows (clamped), their weights
        ``decay**position / count**alpha`` (0 for padding and items beyond ``n``), and the counts."""
        recent = recent[:, : self.history]
        present = ((recent >= 0) & (recent < n)).float()
        index = recent.clamp(min=0, max=n - 1)
        counts = self.counts[:n].clamp(min=self.increment)
        weights = present * self.decay ** torch.arange(recent.shape[1], dtype=torch.float) / counts[index] ** self.alpha
        return index, weights, counts

    def scores(self, recent: torch.Tensor, n_items: int) -> torch.Tensor:
        """``(users, n_items)`` scores for users whose recent items are the rows of ``recent``
        (newest first, ``-1`` padded; at most ``history`` columns are read)."""
        self.grow(n_items)
        n = min(n_items, self.capacity)
        index, weights, counts = self._recent_weights(recent, n)
        # (users x n, at most history entries a row) @ matrix: reads each recent item's row once,
        # without gathering a (users, history, n) tensor (3x faster at 12k items)
        users = torch.arange(index.shape[0]).repeat_interleave(index.shape[1])
        picks = torch.sparse_coo_tensor(torch.stack([users, index.reshape(-1)]), weights.reshape(-1),
                                        (index.shape[0], self.capacity), check_invariants=False).coalesce()
        scores = torch.sparse.mm(picks, self.matrix)[:, :n] / counts ** (1.0 - self.alpha)
        return torch.nn.functional.pad(scores, (0, n_items - n))

    def scores_for(self, recent: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """:meth:`scores` of ``candidates`` only, ``(users, candidates)`` (``-1``: 0), read from
        the ``(users, history, candidates)`` cells alone, not whole rows."""
        n = self.capacity
        index, weights, counts = self._recent_weights(recent, n)
        columns = candidates.clamp(min=0, max=n - 1)
        cells = self.matrix[index.unsqueeze(2), columns.unsqueeze(1)]  # (users, history, candidates)
        scores = torch.einsum("uh,uhc->uc", weights, cells) / counts[columns] ** (1.0 - self.alpha)
        return scores * ((candidates >= 0) & (candidates < n))

    def neighbours(self, recent: torch.Tensor, n: int) -> torch.Tensor:
        """Each user's ``n`` best co-occurrence items, best first (``-1`` where none co-occur)."""
        scores = self.scores(recent, self.capacity)
        top, items = torch.topk(scores, min(n, scores.shape[1]), dim=1)
        out = torch.full((recent.shape[0], n), -1, dtype=torch.long)
        out[:, : items.shape[1]] = torch.where(top > 0, items, torch.full_like(items, -1))
        return out

    def interactions_of(self, items: torch.Tensor) -> torch.Tensor:
        """The (decayed) positive events of ``items`` (any shape; ``-1`` and beyond the cap: 0)."""
        inside = (items >= 0) & (items < self.capacity)
        return self.counts[items.clamp(min=0, max=max(self.capacity - 1, 0))] / self.increment * inside

    def most_popular(self, n: int, n_items: int) -> torch.Tensor:
        """The ``n`` items with the most (decayed) positive events, most first."""
        counts = self.interactions(n_items)
        return torch.topk(counts, min(n, len(counts))).indices

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

    @checked("co-occurrence index")
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


def make_index(head: HeadSettings, n_items: int) -> ItemCooccurrence | SparseCooccurrence | None:
    """The co-occurrence index ``head`` asks for, for a catalogue of ``n_items`` (None: off)."""
    if not head.cooccurrence_history:
        return None
    kind = head.cooccurrence_index
    if kind == "sparse" or (kind == "auto" and n_items > head.cooccurrence_max_items):
        return SparseCooccurrence(head.cooccurrence_history, head.cooccurrence_decay, head.cooccurrence_slots,
                                  capacity=max(1024, n_items), half_life=head.cooccurrence_half_life,
                                  alpha=head.cooccurrence_alpha)
    return ItemCooccurrence(head.cooccurrence_history, head.cooccurrence_decay,
                            capacity=max(min(1024, head.cooccurrence_max_items), n_items),
                            max_items=head.cooccurrence_max_items, half_life=head.cooccurrence_half_life,
                            alpha=head.cooccurrence_alpha)


def outgrown(index: ItemCooccurrence | SparseCooccurrence | None, head: HeadSettings,
             n_items: int) -> SparseCooccurrence | None:
    """With ``head.cooccurrence_index: auto``, the sparse index that replaces a dense one the
    catalogue has outgrown (each row's top neighbours carried over); else None."""
    if not isinstance(index, ItemCooccurrence) or head.cooccurrence_index != "auto" or n_items <= index.max_items:
        return None
    log.warning("the catalogue has %d items, more than head.cooccurrence_max_items=%d: the co-occurrence index "
                "becomes sparse (the top %d neighbours of each item)", n_items, index.max_items,
                head.cooccurrence_slots)
    return SparseCooccurrence.from_dense(index.counts, index.matrix, index.increment, index.history, index.decay,
                                         head.cooccurrence_slots, head.cooccurrence_half_life, index.alpha)
