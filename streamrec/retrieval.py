"""Top-K with exclusions and business rules, over the whole catalogue or each user's candidates.

With scores for every item, items the user already interacted with, denied items and items
outside the allow list get ``-inf``; with candidates (``columns``: the item of each column),
those were never candidates and only padding is left out. Per-category caps are applied
greedily down the ranked list.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

from streamrec.catalog import Catalog
from streamrec.config import RetrievalSettings


class Retriever:
    def __init__(self, settings: RetrievalSettings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self._blocked: torch.Tensor | None = None
        self._blocked_at = -1

    def blocked_mask(self) -> torch.Tensor:
        """True for items never to recommend (deny list, outside allow list)."""
        if self._blocked is None or self._blocked_at != self.catalog.changes:
            n = len(self.catalog)
            blocked = torch.zeros(n, dtype=torch.bool)
            if self.settings.allow is not None:
                blocked[:] = True
                allowed = [self.catalog.find_index(i) for i in self.settings.allow]
                blocked[[i for i in allowed if i is not None]] = False
            denied = [self.catalog.find_index(i) for i in self.settings.deny]
            blocked[[i for i in denied if i is not None]] = True
            self._blocked, self._blocked_at = blocked, self.catalog.changes
        return self._blocked

    def excluded(self, seen: Sequence[Sequence[int]], n_items: int) -> torch.Tensor:
        """``(users, n_items)``: True for each user's ``seen`` item indices and every blocked item."""
        excluded = torch.zeros(len(seen), n_items, dtype=torch.bool)
        for row, items in enumerate(seen):
            excluded[row, list(items)] = True
        excluded[:, self.blocked_mask()[:n_items]] = True
        return excluded

    def rank(self, scores: torch.Tensor, exclude: Sequence[Collection[str]],
             columns: torch.Tensor | None = None) -> list[list[tuple[int, float]]]:
        """Rank each row of ``scores`` (users x items, or users x candidates with ``columns``
        naming each column's item, ``-1`` for padding); returns ``[(item_index, score), ...]`` per user."""
        if columns is not None:  # seen and blocked items were never candidates
            scores = scores.masked_fill(columns < 0, float("-inf"))
        else:
            scores = scores.clone()
            scores[:, self.blocked_mask()] = float("-inf")
            for row, seen in enumerate(exclude):
                seen_index = [i for i in map(self.catalog.find_index, seen) if i is not None]
                if seen_index:
                    scores[row, seen_index] = float("-inf")
        k = min(self.settings.k, scores.shape[1])
        cap = self.settings.max_per_category
        depth = min(scores.shape[1], 4 * k + 64) if cap else k
        top_scores, top_index = torch.topk(scores, depth, dim=1)
        top_items = top_index if columns is None else torch.gather(columns, 1, top_index)
        results = []
        for row, (items, values) in enumerate(zip(top_items.tolist(), top_scores.tolist(), strict=True)):
            pairs = [(i, s) for i, s in zip(items, values, strict=True) if s != float("-inf")]
            if cap:
                pairs = self._apply_category_cap(pairs, scores[row], k, cap, None if columns is None else columns[row])
            results.append(pairs[:k])
        return results

    def _apply_category_cap(self, pairs: list[tuple[int, float]], row: torch.Tensor, k: int,
                            cap: int, items: torch.Tensor | None) -> list[tuple[int, float]]:
        chosen = _capped(pairs, self.catalog, k, cap)
        if len(chosen) < k and len(pairs) < int((row > float("-inf")).sum()):
            # the shortlist ran dry under the cap: fall back to the full ranked list
            values, index = torch.sort(row, descending=True)
            full = [(int(i if items is None else items[i]), float(s))
                    for i, s in zip(index, values, strict=True) if s != float("-inf")]
            chosen = _capped(full, self.catalog, k, cap)
        return chosen


def _capped(pairs: list[tuple[int, float]], catalog: Catalog, k: int, cap: int) -> list[tuple[int, float]]:
    counts: dict[str, int] = {}
    chosen = []
    for index, score in pairs:
        category = catalog.category(catalog.ids[index])
        if counts.get(category, 0) >= cap:
            continue
        counts[category] = counts.get(category, 0) + 1
        chosen.append((index, score))
        if len(chosen) == k:
            break
    return chosen
