"""The encoder's vectors of item texts, computed once per item and refreshed when text changes.

Rows follow the catalogue's dense indices. The catalogue logs every new item and text change;
those wait here until encoded: all at once when the whole catalogue is ranked (:meth:`matrix`),
or, for a large catalogue (``lazy``), the ones a batch needs at once (:meth:`ensure`) and the
rest a few hundred per batch in the background (:meth:`encode_pending`), so a large catalogue
does not delay the first recommendation. The cache persists to safetensors next to the head
checkpoint; on load, a row is reused only if the item's text is unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from streamrec.catalog import Catalog
from streamrec.checkpoint import checked, load_tensors, save_tensors
from streamrec.encoding import TextEncoder
from streamrec.text import TextTemplate

FORMAT = "streamrec-item-vectors-1"


class ItemVectors:
    def __init__(self, encoder: TextEncoder, catalog: Catalog, template: TextTemplate) -> None:
        self.encoder = encoder
        self.catalog = catalog
        self.template = template
        self._vectors = torch.zeros(0, encoder.dim)
        self._texts: list[str | None] = []  # the text each row was encoded from (None: not yet)
        self._pending: dict[int, None] = {}  # indices whose text is new or changed, oldest first
        self._position = 0  # in the catalogue's change log
        self.encoded = 0
        self.lazy = False  # True: encode on demand and in the background, never the whole catalogue at once
        self.on_encoded: Callable[[torch.Tensor, torch.Tensor], None] | None = None  # (indices, vectors)

    def item_text(self, index: int) -> str:
        item_id = self.catalog.ids[index]
        item = self.catalog.get(item_id)
        return self.template.render_item(item) if item else self.template.unknown_item.format(item_id=item_id)

    @property
    def pending(self) -> int:
        """Items whose text is new or changed since they were last encoded."""
        self._collect()
        return len(self._pending)

    def matrix(self) -> torch.Tensor:
        """The (n_items, dim) matrix, encoding new or changed items first."""
        self._collect()
        if self._pending:
            self._encode(sorted(self._pending))
        return self._vectors[: len(self.catalog)]

    def current(self) -> torch.Tensor:
        """The (n_items, dim) matrix as it is: rows not encoded yet are zero."""
        self._grow(len(self.catalog))
        return self._vectors[: len(self.catalog)]

    def ensure(self, indices: Iterable[int], limit: int | None = None) -> None:
        """Encode those of ``indices`` that are new or changed (the items a batch needs), at
        most ``limit`` of them (the first ones given)."""
        self._collect()
        stale = list(dict.fromkeys(i for i in indices if i in self._pending))[:limit]
        if stale:
            self._encode(sorted(stale))

    def encode_pending(self, budget: int) -> int:
        """Encode up to ``budget`` waiting items, oldest first (background work between batches)."""
        self._collect()
        batch = list(itertools.islice(self._pending, budget))
        if batch:
            self._encode(sorted(batch))
        return len(batch)

    def _collect(self) -> None:
        changed = self.catalog.changed
        for index in changed[self._position:]:
            self._pending[index] = None
        self._position = len(changed)

    def _grow(self, n: int) -> None:
        if n > self._vectors.shape[0]:
            grown = torch.zeros(max(n, 2 * self._vectors.shape[0]), self.encoder.dim)
            grown[: self._vectors.shape[0]] = self._vectors
            self._vectors = grown
            self._texts.extend([None] * (grown.shape[0] - len(self._texts)))

    def _encode(self, indices: list[int]) -> None:
        self._grow(len(self.catalog))
        for index in indices:
            self._pending.pop(index, None)
        stale = [i for i in indices if self._texts[i] != self.item_text(i)]
        if not stale:
            return
        texts = [self.item_text(i) for i in stale]
        vectors = self.encoder.encode(texts)
        self._vectors[stale] = vectors
        for i, text in zip(stale, texts, strict=True):
            self._texts[i] = text
        self.encoded += len(stale)
        if self.on_encoded is not None:
            self.on_encoded(torch.tensor(stale), vectors)

    def encoded_items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The indices of items with a vector, and their vectors."""
        n = len(self.catalog)
        self._grow(n)
        done = torch.tensor([i for i in range(n) if self._texts[i] is not None], dtype=torch.long)
        return done, self._vectors[done]

    def save(self, path: str | Path, item_ids: Sequence[str]) -> None:
        """Every item's vector with the hash of the text it was encoded from; ``item_ids``: the
        catalogue's ids, in index order."""
        n = len(self.catalog)
        if not self.lazy:
            self.matrix()
        self._grow(n)
        hashes = [_digest(t) for t in self._texts[:n]]  # an item not encoded yet: the empty text's
        meta = {"item_ids": json.dumps(list(item_ids[:n])), "text_sha1": json.dumps(hashes)}
        save_tensors(path, {"vectors": self._vectors[:n]}, FORMAT, meta)

    @checked("item-vector cache")
    def load(self, path: str | Path, index_of: Callable[[str], int]) -> int:
        """Reuse saved rows whose item text is unchanged; returns how many were reused.
        ``index_of``: the catalogue's index of an item id (indexing it if new)."""
        tensors, meta = load_tensors(path, FORMAT, "item-vector cache")
        vectors = tensors["vectors"]
        ids, hashes = json.loads(meta["item_ids"]), json.loads(meta["text_sha1"])
        for item_id in ids:
            index_of(item_id)
        self._collect()
        self._pending.update(dict.fromkeys(range(len(self.catalog))))  # checked against their text again
        self._grow(len(self.catalog))
        reused = 0
        for row, (item_id, digest) in enumerate(zip(ids, hashes, strict=True)):
            index = index_of(item_id)
            text = self.item_text(index)
            if text and _digest(text) == digest:
                self._vectors[index] = vectors[row]
                self._texts[index] = text
                reused += 1
        return reused


def _digest(text: str | None) -> str:
    return hashlib.sha1((text or "").encode()).hexdigest()
