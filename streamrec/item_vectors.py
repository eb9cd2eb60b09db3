"""The encoder's vectors of item texts, computed once per item and refreshed when text changes.

Rows follow the catalogue's dense indices. The cache persists to safetensors next to the
head checkpoint; on load, a row is reused only if the item's text is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from streamrec.catalog import Catalog
from streamrec.checkpoint import load_tensors, save_tensors
from streamrec.encoding import TextEncoder
from streamrec.text import TextTemplate

FORMAT = "streamrec-item-vectors-1"


class ItemVectors:
    def __init__(self, encoder: TextEncoder, catalog: Catalog, template: TextTemplate) -> None:
        self.encoder = encoder
        self.catalog = catalog
        self.template = template
        self._vectors = torch.zeros(0, encoder.dim)
        self._texts: list[str | None] = []
        self._seen_changes = -1
        self.encoded = 0

    def item_text(self, index: int) -> str:
        item_id = self.catalog.ids[index]
        item = self.catalog.get(item_id)
        return self.template.render_item(item) if item else self.template.unknown_item.format(item_id=item_id)

    def matrix(self) -> torch.Tensor:
        """The (n_items, dim) matrix, encoding new or changed items first."""
        if self.catalog.changes != self._seen_changes:
            self._refresh()
        return self._vectors[: len(self.catalog)]

    def _grow(self, n: int) -> None:
        if n > self._vectors.shape[0]:
            grown = torch.zeros(max(n, 2 * self._vectors.shape[0]), self.encoder.dim)
            grown[: self._vectors.shape[0]] = self._vectors
            self._vectors = grown
            self._texts.extend([None] * (grown.shape[0] - len(self._texts)))

    def _refresh(self) -> None:
        n = len(self.catalog)
        self._grow(n)
        stale = [i for i in range(n) if self._texts[i] != self.item_text(i)]
        if stale:
            texts = [self.item_text(i) for i in stale]
            self._vectors[stale] = self.encoder.encode(texts)
            for i, text in zip(stale, texts, strict=True):
                self._texts[i] = text
            self.encoded += len(stale)
        self._seen_changes = self.catalog.changes

    def save(self, path: str | Path, item_ids: Sequence[str]) -> None:
        """Every item's vector with the hash of the text it was encoded from; ``item_ids``: the
        catalogue's ids, in index order."""
        n = len(self.catalog)
        self.matrix()
        hashes = [_digest(t) for t in self._texts[:n]]
        meta = {"item_ids": json.dumps(list(item_ids[:n])), "text_sha1": json.dumps(hashes)}
        save_tensors(path, {"vectors": self._vectors[:n]}, FORMAT, meta)

    def load(self, path: str | Path, index_of: Callable[[str], int]) -> int:
        """Reuse saved rows whose item text is unchanged; returns how many were reused.
        ``index_of``: the catalogue's index of an item id (indexing it if new)."""
        tensors, meta = load_tensors(path, FORMAT, "item-vector cache")
        vectors = tensors["vectors"]
        ids, hashes = json.loads(meta["item_ids"]), json.loads(meta["text_sha1"])
        for item_id in ids:
            index_of(item_id)
        self._seen_changes = -1
        self._grow(len(self.catalog))
        reused = 0
        for row, (item_id, digest) in enumerate(zip(ids, hashes, strict=True)):
            index = index_of(item_id)
            text = self.item_text(index)
            if _digest(text) == digest:
                self._vectors[index] = vectors[row]
                self._texts[index] = text
                reused += 1
        return reused


def _digest(text: str | None) -> str:
    return hashlib.sha1((text or "").encode()).hexdigest()
