"""Why each recommended item: the event of the user's window that supports it most.

For each pick, the window event whose item was taken most often together with it (the
co-occurrence count), else the one whose learned affinity as context is highest (the head's
item vector of the pick against the context vectors of the window's items, softmaxed so it
only breaks ties among counts); the latest event wins ties. A batch is one computation: the
head's vectors of every distinct pick and window item once, then every user's (picks, window)
table at once, padded to the longest.

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

from streamrec.catalog import Catalog
from streamrec.cooccurrence import ItemCooccurrence
from streamrec.events import Event
from streamrec.recommendations import RecommendedItem
from streamrec.sparse_cooccurrence import SparseCooccurrence
from streamrec.text import TextTemplate

Vectors = Callable[[torch.Tensor], torch.Tensor]  # distinct item indices -> (items, dim)


def supporting_events(picks: Sequence[Sequence[int]], windows: Sequence[Sequence[int]], pick_vectors: Vectors,
                      context_vectors: Vectors,
                      cooccurrence: ItemCooccurrence | SparseCooccurrence | None) -> list[list[int]]:
    """For each user, for each of their ``picks``, the position in their window (its item
    indices, oldest first) of the supporting event; an empty window gives an empty list."""
    if not any(p and w for p, w in zip(picks, windows, strict=True)):
        return [[] for _ in picks]
    pick_index, window_index = _padded(picks), _padded(windows)  # (users, picks), (users, window); -1: none
    pick_vecs, window_vecs = _vectors(pick_index, pick_vectors), _vectors(window_index, context_vectors)
    in_window = (window_index >= 0).unsqueeze(1)  # (users, 1, window)
    affinity = torch.bmm(pick_vecs, window_vecs.transpose(1, 2)).masked_fill(~in_window, float("-inf"))
    support = torch.softmax(affinity, dim=2).nan_to_num(0.0)  # (users, picks, window), in (0, 1)
    if cooccurrence is not None:
        support = support + cooccurrence.pairs(pick_index, window_index)
    support = support.masked_fill(~in_window, -1.0)  # padding never supports
    latest = (support.shape[2] - 1 - support.flip(2).argmax(dim=2)).tolist()
    return [row[: len(p)] if p and w else [] for row, p, w in zip(latest, picks, windows, strict=True)]


def explained(pairs: Sequence[tuple[int, float]], window: Sequence[Event], support: Sequence[int],
              template: TextTemplate, catalog: Catalog) -> tuple[list[RecommendedItem], list[str]]:
    """A user's picks ``(item index, score)`` as published items, each with the rendered reason
    of its supporting event (``support``: positions in ``window``), and the picks' names."""
    reasons = ([template.render_reason(window[b], catalog) for b in support] if support
               else [template.render_reason(None, catalog)] * len(pairs))
    names = [template.item_name(catalog.ids[i], catalog) for i, _ in pairs]
    items = [RecommendedItem(catalog.ids[i], round(s, 5), reason, name)
             for (i, s), reason, name in zip(pairs, reasons, names, strict=True)]
    return items, names


def _padded(lists: Sequence[Sequence[int]]) -> torch.Tensor:
    out = torch.full((len(lists), max(1, max(map(len, lists)))), -1, dtype=torch.long)
    for row, items in enumerate(lists):
        out[row, : len(items)] = torch.as_tensor(items, dtype=torch.long)
    return out


def _vectors(index: torch.Tensor, vectors: Vectors) -> torch.Tensor:
    """``vectors`` of every distinct item in ``index`` in one call, laid out as ``index``
    (padding's rows are zero)."""
    present = index >= 0
    unique, spread = torch.unique(index[present], return_inverse=True)
    with torch.no_grad():
        rows = vectors(unique)
    out = torch.zeros(*index.shape, rows.shape[1])
    out[present] = rows[spread]
    return out
