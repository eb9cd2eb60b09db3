from pathlib import Path

import torch

from streamrec.catalog import Catalog, Item
from streamrec.encoding import HFEncoder
from streamrec.item_vectors import ItemVectors
from streamrec.text import TextTemplate


def test_each_item_is_encoded_once_and_again_when_its_text_changes(tiny_encoder: HFEncoder) -> None:
    catalog = Catalog([Item("1", "Mini Kite 9", "Toys"), Item("2", "Pocket Atlas 7", "Books")])
    cache = ItemVectors(tiny_encoder, catalog, TextTemplate.english())
    first = cache.matrix().clone()
    assert cache.encoded == 2 and first.shape == (2, tiny_encoder.dim)
    cache.matrix()
    assert cache.encoded == 2  # nothing new
    catalog.index_of("3")  # seen in an event, no text yet: fallback text
    catalog.upsert(Item("2", "Giant Robot 4", "Toys"))
    second = cache.matrix()
    assert cache.encoded == 4
    torch.testing.assert_close(second[0], first[0])
    assert not torch.allclose(second[1], first[1])
    torch.testing.assert_close(second[1], tiny_encoder.encode(["Giant Robot 4 (Toys)"])[0])
    torch.testing.assert_close(second[2], tiny_encoder.encode(["item 3"])[0])


def test_persisted_cache_is_reused_only_for_unchanged_text(tiny_encoder: HFEncoder, tmp_path: Path) -> None:
    catalog = Catalog([Item("1", "Mini Kite 9", "Toys"), Item("2", "Pocket Atlas 7", "Books")])
    cache = ItemVectors(tiny_encoder, catalog, TextTemplate.english())
    cache.save(tmp_path / "items.safetensors", catalog.ids)
    changed = Catalog([Item("2", "Giant Robot 4", "Toys"), Item("1", "Mini Kite 9", "Toys")])
    restored = ItemVectors(tiny_encoder, changed, TextTemplate.english())
    assert restored.load(tmp_path / "items.safetensors", changed.index_of) == 1
    restored.matrix()
    assert restored.encoded == 1  # only the changed item
    torch.testing.assert_close(restored.matrix()[changed.index_of("1")], cache.matrix()[0])
