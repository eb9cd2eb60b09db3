"""Each item's nearest neighbours by text, kept up to date as the catalogue grows or changes.

The neighbours of an item are the ``k`` other catalogue items whose encoder vectors are most
alike (cosine). They carry collaborative evidence over to items that have none: the ranker
scores an item nobody has taken yet (or a cold one) by what the co-occurrence says of the
items that read like it (:meth:`TextNeighbours.spread`), so a new "Toy Story 3" inherits the
affinity a user has for "Toy Story 2". When items arrive or their text changes, only their
rows (and the rows that listed a changed item) are computed again; the other items' lists
take the new ones in where they are closer.

>>> neighbours = TextNeighbours(k=1)
>>> neighbours.update(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]))
>>> neighbours.indices.squeeze(1).tolist()
[1, 0, 1]
>>> neighbours.spread(torch.tensor([[5.0, 0.0, 0.0]])).tolist()  # each item takes its neighbour's score
[[0.0, 5.0, 0.0]]
"""

from __future__ import annotations

import warnings

import torch

from streamrec.errors import ConfigError, UsageError

CHUNK = 1024  # rows per similarity block: bounds memory to CHUNK x items floats


class TextNeighbours:
    def __init__(self, k: int) -> None:
        if k < 1:
            raise ConfigError(f"text neighbours: k must be at least 1, got {k}")
        self.k = k
        self._unit = torch.zeros(0, 0)  # the unit vectors the lists were computed from
        self.indices = torch.zeros(0, 0, dtype=torch.long)  # (items, k'): neighbours, most alike first
        self.similarities = torch.zeros(0, 0)  # their cosines
        self.recomputed = 0  # rows computed against the whole catalogue (tests check updates stay small)
        self._matrix: torch.Tensor | None = None

    def update(self, vectors: torch.Tensor) -> None:
        """Bring the lists up to date with ``vectors`` (items x dim; rows follow catalogue indices)."""
        unit = torch.nn.functional.normalize(vectors.float(), dim=1)
        n, old = unit.shape[0], self._unit.shape[0]
        if n == old and torch.equal(unit, self._unit):
            return
        width = max(0, min(self.k, n - 1))
        if n < old or width != self.indices.shape[1] or unit.shape[1] != self._unit.shape[1]:
            self._compute_all(unit, width)
            return
        changed = torch.cat([(unit[:old] != self._unit).any(dim=1).nonzero().squeeze(1), torch.arange(old, n)])
        redo = torch.zeros(n, dtype=torch.bool)  # changed rows, and rows that had a changed neighbour
        redo[changed] = True
        redo[:old] |= torch.isin(self.indices, changed).any(dim=1)
        if int(redo.sum()) * 4 > n:  # most rows move: start over
            self._compute_all(unit, width)
            return
        rows = (~redo).nonzero().squeeze(1)
        # the other rows keep their lists and let the changed items compete for a place in them
        merged = torch.cat([self.similarities[rows], unit[rows] @ unit[changed].T], dim=1)
        top = merged.topk(width, dim=1)
        pool = torch.cat([self.indices[rows], changed.expand(len(rows), -1)], dim=1)
        indices = torch.empty(n, width, dtype=torch.long)
        values = torch.empty(n, width)
        indices[rows], values[rows] = pool.gather(1, top.indices), top.values
        redone = redo.nonzero().squeeze(1)
        indices[redone], values[redone] = self._nearest(unit, redone, width)
        self._unit, self.indices, self.similarities, self._matrix = unit, indices, values, None

    def spread(self, scores: torch.Tensor) -> torch.Tensor:
        """``(users, items)`` scores -> each item's mean of its neighbours' scores, weighted by
        how alike they read (neighbours with a cosine of zero or less weigh nothing)."""
        n = self.indices.shape[0]
        if scores.shape[-1] != n:
            raise UsageError(f"scores for {scores.shape[-1]} items, neighbours of {n}")
        if self._matrix is None:  # (items, items), k entries a row: one sparse product per call
            indices, order = self.indices.sort(dim=1)
            weights = self.similarities.gather(1, order).clamp(min=0)
            weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
                self._matrix = torch.sparse_csr_tensor(
                    torch.arange(n + 1) * indices.shape[1], indices.reshape(-1),
                    weights.reshape(-1), (n, n), check_invariants=True)
        return (self._matrix @ scores.T.float()).T

    def _compute_all(self, unit: torch.Tensor, width: int) -> None:
        self.indices, self.similarities = self._nearest(unit, torch.arange(unit.shape[0]), width)
        self._unit, self._matrix = unit, None

    def _nearest(self, unit: torch.Tensor, rows: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        indices, values = [], []
        for start in range(0, len(rows), CHUNK):
            block = rows[start:start + CHUNK]
            similarities = unit[block] @ unit.T
            similarities[torch.arange(len(block)), block] = float("-inf")  # never its own neighbour
            top = similarities.topk(width, dim=1)
            indices.append(top.indices)
            values.append(top.values)
        self.recomputed += len(rows)
        if not indices:
            return torch.zeros(0, width, dtype=torch.long), torch.zeros(0, width)
        return torch.cat(indices), torch.cat(values)
