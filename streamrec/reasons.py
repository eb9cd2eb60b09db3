"""Why each recommended item: the event of the user's window that supports it most.

For each pick, the window event whose item was taken most often together with it (the
co-occurrence count), else the one whose learned affinity as context is highest (the head's
item vector of the pick against the context vectors of the window's items, softmaxed so it
only breaks ties among counts); the latest event wins ties. The head's vectors are computed
once per batch for every distinct pick and window item, not per user.

>>> picks, windows = [[5, 6], []], [[1, 2], []]
>>> vectors = {5: torch.tensor([1.0, 0.0]), 6: torch.tensor([0.0, 1.0])}
>>> contexts = {1: torch.tensor([1.0, 0.0]), 2: torch.tensor([0.0, 1.0])}
>>> supporting_events(picks, windows, lambda items: torch.stack([vectors[int(i)] for i in items]),
...                   lambda items: torch.stack([contexts[int(i)] for i in items]), None)
[[0, 1], []]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from streamrec.cooccurrence import ItemCooccurrence
from streamrec.sparse_cooccurrence import SparseCooccurrence

Vectors = Callable[[torch.Tensor], torch.Tensor]  # distinct item indices -> (items, dim)


def supporting_events(picks: Sequence[Sequence[int]], windows: Sequence[Sequence[int]], pick_vectors: Vectors,
                      context_vectors: Vectors,
                      cooccurrence: ItemCooccurrence | SparseCooccurrence | None) -> list[list[int]]:
    """For each user, for each of their ``picks``, the position in their window (its item
    indices, oldest first) of the supporting event; an empty window gives an empty list."""
    picked = _each_user(picks, pick_vectors)
    context = _each_user(windows, context_vectors)
    out: list[list[int]] = []
    for user_picks, window, pick_vecs, window_vecs in zip(picks, windows, picked, context, strict=True):
        if not window or not user_picks:
            out.append([])
            continue
        support = torch.softmax(pick_vecs @ window_vecs.T, dim=1)  # (picks, window), in (0, 1)
        if cooccurrence is not None:
            support = support + cooccurrence.pairs(torch.tensor(list(user_picks)), torch.tensor(list(window)))
        out.append((support.shape[1] - 1 - support.flip(1).argmax(dim=1)).tolist())
    return out


def _each_user(lists: Sequence[Sequence[int]], vectors: Vectors) -> list[torch.Tensor]:
    """``vectors`` of every distinct item in ``lists`` in one call, split back per list."""
    flat = torch.tensor([i for items in lists for i in items], dtype=torch.long)
    if not len(flat):
        return [torch.empty(0, 0) for _ in lists]
    unique, spread = torch.unique(flat, return_inverse=True)
    with torch.no_grad():
        rows = vectors(unique)[spread]
    return list(torch.split(rows, [len(items) for items in lists]))
