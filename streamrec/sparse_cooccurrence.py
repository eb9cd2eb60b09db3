"""Item co-occurrence for catalogues of any size: each item keeps its top ``slots`` neighbours.

The same signal as :class:`~streamrec.cooccurrence.ItemCooccurrence` (two items co-occur when one
user takes both within ``history`` positive events; similarity ``c(i, j) / (n(i)**alpha
n(j)**(1 - alpha))``; a user's score for ``j`` sums ``decay**p * sim(recent[p], j)``), stored
sparsely: row ``i`` holds at most ``slots`` (item, count) pairs, kept by the Space-Saving rule
(Metwally et al., 2005): a new neighbour of a full row takes the slot of the smallest count and
inherits it as its possible error, so any neighbour seen more than ``1/slots`` of the row's
pairs is kept, and scores read the guaranteed part ``count - error``. Memory is linear in the
catalogue, ``items x slots x 12`` bytes (64 slots: 768 bytes an item, 0.77 GB for a million),
with no cap; counts decay exactly as the dense index's do.

It scores candidates, not the catalogue: :meth:`scores_for` reads users' recent items' rows for
``(users, candidates)``, and :meth:`neighbours` turns the same rows into each user's best
co-occurrence candidates, so a batch costs ``users x history x slots``, whatever the catalogue.

>>> index = SparseCooccurrence(history=2, decay=0.5, slots=4)
>>> index.learn([], 0); index.learn([0], 1)           # one user: item 0, then item 1
>>> index.learn([], 2); index.learn([2], 0)           # another: item 2, then item 0
>>> [round(x, 3) for x in index.scores_for(torch.tensor([[0, -1]]), torch.tensor([[0, 1, 2]]))[0].tolist()]
[0.0, 0.707, 0.707]
>>> index.neighbours(torch.tensor([[0, -1]]), 5).tolist()
[[1, 2, -1, -1, -1]]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from streamrec.checkpoint import checked, load_tensors, save_tensors

FORMAT = "streamrec-cooccurrence-sparse-1"


class SparseCooccurrence:
    def __init__(self, history: int = 10, decay: float = 0.8, slots: int = 64, capacity: int = 1024,
                 half_life: float | None = None, alpha: float = 0.5) -> None:
        self.history = history
        self.decay = decay
        self.alpha = alpha
        self.slots = slots
        self.growth = 2.0 ** (1.0 / half_life) if half_life else 1.0  # as ItemCooccurrence's
        self.increment = 1.0
        self.ignored = 0  # kept for the dense index's interface: nothing is ever ignored here
        self.counts = np.zeros(0, np.float32)
        self.ids = np.full((0, slots), -1, np.int32)
        self.values = np.zeros((0, slots), np.float32)
        self.errors = np.zeros((0, slots), np.float32)
        self.grow(capacity)

    @property
    def capacity(self) -> int:
        return int(self.counts.shape[0])

    def memory_bytes(self) -> int:
        return int(self.counts.nbytes + self.ids.nbytes + self.values.nbytes + self.errors.nbytes)

    def grow(self, n_items: int) -> None:
        """Room for item indices below ``n_items`` (doubling: each item is copied O(1) times)."""
        if n_items <= self.capacity:
            return
        capacity, n = max(n_items, 2 * self.capacity), self.capacity
        counts = np.zeros(capacity, np.float32)
        ids = np.full((capacity, self.slots), -1, np.int32)
        values, errors = np.zeros((capacity, self.slots), np.float32), np.zeros((capacity, self.slots), np.float32)
        counts[:n], ids[:n], values[:n], errors[:n] = self.counts, self.ids, self.values, self.errors
        self.counts, self.ids, self.values, self.errors = counts, ids, values, errors

    # -- learning ----------------------------------------------------------------------------

    def learn(self, recent: list[int], item: int) -> None:
        """A user with positive items ``recent`` (newest first) took ``item``."""
        others = np.array([i for i in dict.fromkeys(recent[: self.history]) if i != item and i >= 0], np.int64)
        self.grow(max(item, int(others.max()) if len(others) else 0) + 1)
        step = self.increment
        self.counts[item] += step
        if len(others):
            self._bump_rows(others, item, step)
            self._bump_row(item, others, step)
        self.increment *= self.growth
        if self.increment > 1e20:  # rescale everything before float32 runs out of range
            self.counts /= self.increment
            self.values /= self.increment
            self.errors /= self.increment
            self.increment = 1.0

    def _bump_rows(self, rows: np.ndarray, column: int, step: float) -> None:
        """``column`` seen once more in each of ``rows`` (distinct)."""
        hit = self.ids[rows] == column
        found = hit.any(axis=1)
        if found.any():
            self.values[rows[found], hit[found].argmax(axis=1)] += step
        new = rows[~found]
        if len(new):
            ids, values = self.ids[new], self.values[new]
            slot = np.where(ids < 0, -np.inf, values).argmin(axis=1)  # an empty slot, else the smallest
            inherited = np.where(ids[np.arange(len(new)), slot] < 0, 0.0, values[np.arange(len(new)), slot])
            self.ids[new, slot] = column
            self.values[new, slot] = inherited + step
            self.errors[new, slot] = inherited

    def _bump_row(self, row: int, columns: np.ndarray, step: float) -> None:
        """Each of ``columns`` (distinct) seen once more in ``row``."""
        ids = self.ids[row]
        hit = ids[None, :] == columns[:, None]
        found = hit.any(axis=1)
        if found.any():
            self.values[row, hit[found].argmax(axis=1)] += step
        new = columns[~found][: self.slots]
        if len(new):
            key = np.where(ids < 0, -np.inf, self.values[row])
            key[hit.any(axis=0)] = np.inf  # the neighbours just bumped stay
            slot = np.argpartition(key, len(new) - 1)[: len(new)] if len(new) < self.slots else np.arange(self.slots)
            inherited = np.where(ids[slot] < 0, 0.0, self.values[row, slot])
            self.ids[row, slot] = new
            self.values[row, slot] = inherited + step
            self.errors[row, slot] = inherited

    # -- reading -----------------------------------------------------------------------------

    def _evidence(self, recent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each user's neighbour evidence: sorted unique keys ``user * capacity + item`` and
        their summed, weighted, guaranteed counts (the ``1 / n(j)**(1 - alpha)`` still to apply)."""
        recent = recent[:, : self.history]
        n_users, width = recent.shape
        present = (recent >= 0) & (recent < self.capacity)
        index = recent.clamp(min=0, max=max(self.capacity - 1, 0)).numpy()
        counts = torch.from_numpy(np.maximum(self.counts[index], self.increment))
        weights = present.float() * self.decay ** torch.arange(width, dtype=torch.float) / counts ** self.alpha
        ids = torch.from_numpy(self.ids[index]).long()  # (users, width, slots)
        guaranteed = torch.from_numpy(self.values[index] - self.errors[index])
        valid = (ids >= 0) & present.unsqueeze(-1)
        users = torch.arange(n_users).view(-1, 1, 1).expand_as(ids)
        keys = (users * self.capacity + ids)[valid]
        contributions = (weights.unsqueeze(-1) * guaranteed)[valid]
        unique, inverse = torch.unique(keys, return_inverse=True)
        sums = torch.zeros(len(unique)).index_add_(0, inverse, contributions)
        return unique, sums

    def _norm(self, items: torch.Tensor) -> torch.Tensor:
        counts = torch.from_numpy(np.maximum(self.counts[items.clamp(min=0, max=max(self.capacity - 1, 0)).numpy()],
                                             self.increment))
        return counts ** (1.0 - self.alpha)

    def scores_for(self, recent: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``(users, candidates)`` scores: row ``u`` of ``recent`` (newest first, ``-1`` padded)
        against row ``u`` of ``candidates`` (item indices; ``-1`` or unknown ones score 0)."""
        self.grow(int(candidates.max()) + 1 if candidates.numel() else 0)
        unique, sums = self._evidence(recent)
        out = torch.zeros(candidates.shape)
        if len(unique) == 0:
            return out
        users = torch.arange(candidates.shape[0]).unsqueeze(1)
        keys = users * self.capacity + candidates.clamp(min=0)
        position = torch.searchsorted(unique, keys).clamp(max=len(unique) - 1)
        found = (unique[position] == keys) & (candidates >= 0)
        out[found] = sums[position[found]] / self._norm(candidates[found])
        return out

    def scores(self, recent: torch.Tensor, n_items: int) -> torch.Tensor:
        """``(users, n_items)``: every item's score (the whole catalogue ranked, as the dense index does)."""
        return self.scores_for(recent, torch.arange(n_items).expand(recent.shape[0], n_items))

    def neighbours(self, recent: torch.Tensor, n: int) -> torch.Tensor:
        """Each user's ``n`` best-scoring items by co-occurrence with their recent items
        ``(users, n)``, best first, ``-1`` padded (their own recent items may be among them)."""
        out = torch.full((recent.shape[0], n), -1, dtype=torch.long)
        unique, sums = self._evidence(recent)
        if len(unique) == 0 or n == 0:
            return out
        users, items = unique // self.capacity, unique % self.capacity
        scores = (sums / self._norm(items)).numpy()
        order = np.lexsort((-scores, users.numpy()))  # by user, best first
        users, items = users[order], items[order]
        starts = torch.searchsorted(users, users, right=False)
        rank = torch.arange(len(users)) - starts
        keep = rank < n
        out[users[keep], rank[keep]] = items[keep]
        return out

    def pairs(self, items: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """``(..., len(items), len(others))`` co-occurrence counts of ``items`` ``(..., i)`` with
        ``others`` ``(..., o)`` (decay applied; 0 for ``-1`` and when unknown)."""
        rows = items.clamp(min=0, max=max(self.capacity - 1, 0)).numpy()
        ids = torch.from_numpy(self.ids[rows]).long()  # (..., items, slots)
        guaranteed = torch.from_numpy(self.values[rows] - self.errors[rows]) / self.increment
        match = (ids.unsqueeze(-2) == others.unsqueeze(-2).unsqueeze(-1)) & (others >= 0).unsqueeze(-2).unsqueeze(-1)
        inside = ((items >= 0) & (items < self.capacity)).unsqueeze(-1)
        return (match * guaranteed.unsqueeze(-2)).sum(dim=-1) * inside

    def interactions(self, n_items: int) -> torch.Tensor:
        """Each item's (decayed) positive events so far, ``(n_items,)``."""
        self.grow(n_items)
        return torch.from_numpy(self.counts[:n_items] / self.increment)

    def interactions_of(self, items: torch.Tensor) -> torch.Tensor:
        """The (decayed) positive events of ``items`` (any shape; ``-1``: 0)."""
        self.grow(int(items.max()) + 1 if items.numel() else 0)
        counts = torch.from_numpy(self.counts[items.clamp(min=0).numpy()] / self.increment)
        return counts * (items >= 0)

    def popularity(self, n_items: int) -> torch.Tensor:
        return torch.log1p(self.interactions(n_items)).unsqueeze(0)

    def most_popular(self, n: int, n_items: int) -> torch.Tensor:
        """The ``n`` items with the most (decayed) positive events, most first."""
        counts = self.counts[:n_items]
        n = min(n, len(counts))
        top = np.argpartition(-counts, n - 1)[:n] if n else np.zeros(0, np.int64)
        return torch.from_numpy(top[np.argsort(-counts[top], kind="stable")].astype(np.int64))

    # -- state -------------------------------------------------------------------------------

    @classmethod
    def from_dense(cls, counts: torch.Tensor, matrix: torch.Tensor, increment: float, history: int, decay: float,
                   slots: int, half_life: float | None, alpha: float) -> SparseCooccurrence:
        """The top ``slots`` of each row of a dense index (the dense index outgrew its cap)."""
        index = cls(history, decay, slots, max(len(counts), 1), half_life, alpha)
        n = len(counts)
        index.counts[:n] = counts.numpy()
        index.increment = increment
        if n:
            k = min(slots, n)
            values, ids = torch.topk(matrix[:n, :n], k, dim=1)
            kept = values > 0
            index.ids[:n, :k] = torch.where(kept, ids, torch.full_like(ids, -1)).numpy()
            index.values[:n, :k] = (values * kept).numpy()
        return index

    def save(self, path: str | Path, item_ids: list[str]) -> None:
        """Write the index atomically; ``item_ids`` name its rows and neighbours (the catalogue's order)."""
        n = len(item_ids)
        ids = np.where(self.ids[:n] < n, self.ids[:n], -1).astype(np.int64)
        save_tensors(path, {"counts": torch.from_numpy(self.counts[:n] / self.increment),
                            "ids": torch.from_numpy(ids),
                            "values": torch.from_numpy(self.values[:n] / self.increment),
                            "errors": torch.from_numpy(self.errors[:n] / self.increment)},
                     FORMAT, {"item_ids": json.dumps(item_ids), "slots": str(self.slots)})

    @checked("co-occurrence index")
    def load(self, path: str | Path, index_of: Callable[[str], int]) -> None:
        """Load a saved index, its rows and neighbours moved to the live catalogue's indices."""
        tensors, metadata = load_tensors(path, FORMAT, "co-occurrence index")
        rows = np.array([index_of(i) for i in json.loads(metadata["item_ids"])], np.int64)
        self.grow(int(rows.max()) + 1 if len(rows) else 0)
        width = min(self.slots, int(metadata["slots"]))
        saved_ids = tensors["ids"].numpy()[:, :width]
        self.increment = 1.0
        self.counts[:] = 0
        self.ids[:] = -1
        self.values[:] = 0
        self.errors[:] = 0
        self.counts[rows] = tensors["counts"].numpy()
        self.ids[rows, :width] = np.where(saved_ids >= 0, rows[saved_ids.clip(min=0)], -1)
        self.values[rows, :width] = tensors["values"].numpy()[:, :width]
        self.errors[rows, :width] = tensors["errors"].numpy()[:, :width]
