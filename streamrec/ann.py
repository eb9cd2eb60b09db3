"""Approximate nearest items by text: an HNSW graph (usearch) over the items' unit text vectors.

Items join as their text is encoded and move when it changes (:meth:`TextIndex.put`); a
search takes a batch of query vectors (a user's recent items, recency-weighted, as the text
signal reads them) and returns each one's nearest items by inner product, which on unit
vectors ranks as cosine does. The graph is saved beside the item vectors and loaded with
them; one that is missing or does not match is rebuilt from the vectors.

>>> index = TextIndex(dim=2)
>>> index.put(torch.tensor([0, 1, 2]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]))
>>> index.search(torch.tensor([[1.0, 0.1]]), 2).tolist()
[[0, 2]]
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


class TextIndex:
    def __init__(self, dim: int, connectivity: int = 16, expansion_add: int = 64, expansion_search: int = 128,
                 threads: int = 0) -> None:
        from usearch.index import Index  # a compiled extension: loaded only where candidates are used

        self.dim = dim
        self.threads = threads  # 0: all cores
        self._make = lambda: Index(ndim=dim, metric="ip", dtype="f16", connectivity=connectivity,
                                   expansion_add=expansion_add, expansion_search=expansion_search)
        self.index = self._make()

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, item: int) -> bool:
        return item in self.index

    def memory_bytes(self) -> int:
        return int(self.index.memory_usage)

    def put(self, items: torch.Tensor, vectors: torch.Tensor) -> None:
        """Add ``items`` (indices) with their text ``vectors``, replacing the old vectors of any
        already in the index (normalised here)."""
        if len(items) == 0:
            return
        keys = items.numpy().astype(np.uint64)
        present = [int(k) for k in keys if int(k) in self.index]
        if present:
            self.index.remove(np.array(present, dtype=np.uint64))
        unit = torch.nn.functional.normalize(vectors.float(), dim=1).numpy()
        self.index.add(keys, unit, threads=self.threads)

    def search(self, queries: torch.Tensor, n: int) -> torch.Tensor:
        """Each query's ``n`` nearest items ``(queries, n)``, nearest first, ``-1`` padded."""
        out = torch.full((queries.shape[0], n), -1, dtype=torch.long)
        if len(self.index) == 0 or n == 0 or queries.shape[0] == 0:
            return out
        matches = self.index.search(queries.float().numpy(), min(n, len(self.index)), threads=self.threads)
        keys = torch.from_numpy(matches.keys.astype(np.int64)).view(queries.shape[0], -1)
        counts = getattr(matches, "counts", len(matches.keys))  # one query: Matches, without counts
        counts = torch.from_numpy(np.atleast_1d(np.asarray(counts, dtype=np.int64))).view(-1, 1)
        found = torch.arange(keys.shape[1]).unsqueeze(0) < counts
        out[:, : keys.shape[1]] = torch.where(found, keys, torch.full_like(keys, -1))
        return out

    def save(self, path: str | Path) -> None:
        tmp = Path(f"{path}.tmp")
        self.index.save(str(tmp))
        tmp.replace(path)

    def load(self, path: str | Path, expected: int) -> bool:
        """Load a saved graph; False (and an empty index) when it is unreadable or does not hold
        ``expected`` items, so the caller rebuilds it."""
        try:
            index = self._make()
            index.load(str(path))
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("text index %s unreadable (%s): rebuilding it", path, exc)
            return False
        if len(index) != expected or index.ndim != self.dim:
            log.warning("text index %s holds %d items of %d dims, expected %d of %d: rebuilding it", path,
                        len(index), index.ndim, expected, self.dim)
            return False
        self.index = index
        return True
