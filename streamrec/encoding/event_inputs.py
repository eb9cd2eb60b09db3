"""What the model reads for each event of a window: token chunks (text mode) or one vector (item mode).

Text mode: a window's token ids are the concatenation of per-event chunks, each tokenized on
its own: the first event's text, then for every later event the separator (and gap wording)
plus its text. Appending an event appends its chunk, so a cached prefix stays valid. The
joined string tokenized at once can differ at chunk boundaries (``");"`` may be one token
there, two here); the chunked ids are the reference that incremental encoding reproduces.

Item mode: one input position per event, ``inputs_embeds`` = the mean of the model's input
token embeddings over the item's text plus the same for the action word. About 12 tokens per
event become 1.

>>> from streamrec.catalog import Catalog, Item
>>> from streamrec.events import Event
>>> catalog = Catalog([Item("1", "Heat", "Crime")])
>>> chunk_text(TextTemplate.english(), catalog, Event("u", "1", "cart", 5), Event("u", "1", "view", 0))
'; added to cart Heat (Crime)'
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from streamrec.catalog import Catalog
from streamrec.events import Event
from streamrec.text import TextTemplate


def chunk_text(template: TextTemplate, catalog: Catalog, event: Event, previous: Event | None) -> str:
    """The text ``event`` adds to a window whose last event is ``previous`` (None: it is first)."""
    if previous is None:
        return template.render_window([event], catalog)
    head = template.render_window([previous], catalog)
    return template.render_window([previous, event], catalog)[len(head):]


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def remember(self, key: Any, value: Any) -> Any:
        self[key] = value
        if len(self) > self.capacity:
            self.popitem(last=False)
        return value

    def recall(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value


class TextChunks:
    """Token ids of window chunks, tokenized once per distinct chunk text (LRU-bounded)."""

    positions_per_event: int | None = None  # varies

    def __init__(self, tokenizer: Any, template: TextTemplate, catalog: Catalog, capacity: int = 1 << 16) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.catalog = catalog
        self._ids = _Lru(capacity)

    def text(self, event: Event, previous: Event | None) -> str:
        return chunk_text(self.template, self.catalog, event, previous)

    def ids(self, texts: Sequence[str], first: Sequence[bool]) -> list[list[int]]:
        """Token ids of each chunk; a window's first chunk gets the tokenizer's special prefix."""
        out: list[list[int] | None] = [self._ids.recall((t, f)) for t, f in zip(texts, first, strict=True)]
        missing = [i for i, ids in enumerate(out) if ids is None]
        for flag in (True, False):
            todo = [i for i in missing if first[i] is flag]
            if todo:
                encoded = self.tokenizer([texts[i] for i in todo], add_special_tokens=flag)["input_ids"]
                for i, ids in zip(todo, encoded, strict=True):
                    out[i] = self._ids.remember((texts[i], flag), list(ids))
        return [ids or [] for ids in out]


class ItemEmbeddings:
    """One input vector per event: mean input embedding of the item's text + of the action word.

    Vectors are cached by text (LRU-bounded), so an item whose text changes gets a new vector.
    """

    def __init__(self, tokenizer: Any, embedding: torch.nn.Module, template: TextTemplate, catalog: Catalog,
                 capacity: int = 1 << 18) -> None:
        self.tokenizer = tokenizer
        self.embedding = embedding
        self.template = template
        self.catalog = catalog
        self._vectors = _Lru(capacity)

    def text(self, event: Event, previous: Event | None) -> str:
        """What the event's vector is made of (compared to detect catalogue text changes)."""
        item = self.template.item_name(event.item_id, self.catalog)
        return f"{self.template.action_word(event.action)}\x1f{item}"

    @torch.inference_mode()
    def vectors(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), hidden)`` input embeddings, on the model's device and dtype."""
        parts = {part for text in texts for part in text.split("\x1f")}
        missing = [p for p in parts if self._vectors.recall(p) is None]
        if missing:
            weight: torch.Tensor = self.embedding.weight  # type: ignore[assignment]
            encoded = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            for part, ids in zip(missing, encoded, strict=True):
                index = torch.tensor(ids or [self.tokenizer.eos_token_id or 0], device=weight.device)
                self._vectors.remember(part, weight[index].float().mean(dim=0).to(weight.dtype))
        rows = []
        for text in texts:
            action, item = text.split("\x1f")
            rows.append(self._vectors.recall(action) + self._vectors.recall(item))
        return torch.stack(rows)
