"""A window read as the items it holds: each item's text encoded once, the window pooled.

:class:`PooledWindowEncoder` runs no language model per event. Each item's text is encoded
once (by :class:`~streamrec.item_vectors.ItemVectors`, cached and persisted); a user's window
is the weighted mean of its items' vectors, the newest event weighing most (``decay`` per step
back) and each event by its action's weight (a purchase counts more than a view; actions of
weight 0, a skip, not at all). That costs a gather and a sum per user, so a window changes at
the speed of the stream, and any encoder serves, bidirectional ones (MiniLM) included, which
the KV-cache modes cannot extend. What it gives up: the model never reads the window's own
words (the action wording, the order, time gaps) as a whole text.

>>> import torch
>>> from streamrec.catalog import Catalog, Item
>>> from streamrec.events import Event
>>> catalog = Catalog([Item("a", "A"), Item("b", "B")])
>>> class Vectors:  # what ItemVectors gives: the rows of the items asked for
...     def ensure(self, indices, limit=None): pass
...     def current(self): return torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> pooled = PooledWindowEncoder(Vectors(), catalog, {"view": 1.0, "purchase": 3.0}, decay=1.0)
>>> pooled.encode_windows(["u"], [[Event("u", "a", "view", 0), Event("u", "b", "purchase", 1)]])
tensor([[0.2500, 0.7500]])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import torch

from streamrec.catalog import Catalog
from streamrec.events import Event


class ItemRows(Protocol):
    def ensure(self, indices: Iterable[int], limit: int | None = None) -> None: ...

    def current(self) -> torch.Tensor: ...


class PooledWindowEncoder:
    """Window vector = sum over events of ``decay**age * weight(action) * item vector``, normalised."""

    def __init__(self, item_vectors: ItemRows, catalog: Catalog, action_weights: Mapping[str, float],
                 decay: float) -> None:
        self.item_vectors = item_vectors
        self.catalog = catalog
        self.action_weights = dict(action_weights)
        self.decay = decay
        self.cache_bytes = 0  # keeps nothing per user
        self.dim = int(item_vectors.current().shape[1])

    def encode_windows(self, user_ids: Sequence[str], windows: Sequence[Sequence[Event]]) -> torch.Tensor:
        longest = max((len(w) for w in windows), default=0)
        index = torch.zeros(len(windows), max(longest, 1), dtype=torch.long)
        weight = torch.zeros(len(windows), max(longest, 1))
        wanted: list[int] = []
        for row, window in enumerate(windows):
            n = len(window)
            items = [self.catalog.index_of(e.item_id) for e in window]
            wanted.extend(items)
            index[row, :n] = torch.tensor(items, dtype=torch.long)
            weight[row, :n] = torch.tensor([self.action_weights.get(e.action, 0.0) * self.decay ** (n - 1 - p)
                                            for p, e in enumerate(window)])
        self.item_vectors.ensure(wanted)
        rows = self.item_vectors.current()
        total = weight.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return torch.einsum("bl,bld->bd", weight / total, rows[index])

    def forget(self, user_ids: Iterable[str]) -> None:
        return None
