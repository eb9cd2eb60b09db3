"""Fuzzed checkpoint files (``streamrec/checkpoint.py``, ``load_tensors``) and the components that
read them from a state directory (``streamrec/state.py``).

Any tensors and metadata round-trip exactly; a file with its bytes flipped, cut or spliced loads
as tensors or is a :class:`CheckpointError` naming what was being read. The components' own
loaders (``checkpoint.checked``) turn a well-formed file whose metadata or tensors are off into a
:class:`CheckpointError` too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from fuzzkit import FUZZ_FILES, mutated_bytes
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file

from streamrec.catalog import Catalog, Item
from streamrec.checkpoint import load_tensors, save_tensors
from streamrec.config import HeadSettings
from streamrec.cooccurrence import ItemCooccurrence
from streamrec.errors import CheckpointError
from streamrec.head import OnlineHead
from streamrec.item_vectors import ItemVectors
from streamrec.ranker import OnlineRanker
from streamrec.sparse_cooccurrence import SparseCooccurrence
from streamrec.text import TextTemplate

FORMAT = "streamrec-test-1"
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int8, torch.bool]
tensors = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.tuples(st.sampled_from(DTYPES), st.lists(st.integers(0, 4), max_size=3)).map(
        lambda spec: (torch.arange(int(torch.Size(spec[1]).numel())) % 3).reshape(spec[1]).to(spec[0])),
    max_size=4)


class StubEncoder:
    dim = 4

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.ones(len(texts), 4)


def item_vectors() -> ItemVectors:
    return ItemVectors(StubEncoder(), Catalog([Item(f"i{n}", f"Item {n}") for n in range(4)]), TextTemplate())


COMPONENTS: dict[str, Callable[[], Any]] = {
    "head": lambda: OnlineHead(4, HeadSettings(dim=4, context_items=2, replay_size=8), capacity=8),
    "item_vectors": item_vectors,
    "cooccurrence": lambda: ItemCooccurrence(history=2, capacity=8, max_items=16),
    "sparse_cooccurrence": lambda: SparseCooccurrence(history=2, slots=2, capacity=8),
    "ranker": lambda: OnlineRanker(["head", "cooccurrence"]),
}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """What a state directory holds: each component's file, and a plain one."""
    home = tmp_path_factory.mktemp("seeds")
    save_tensors(home / "plain.safetensors", {"w": torch.randn(3, 2), "ids": torch.arange(4)}, FORMAT, {"v": "1"})
    for name, make in COMPONENTS.items():
        make().save(home / f"{name}.safetensors", [f"i{n}" for n in range(4)])
    return [path.read_bytes() for path in sorted(home.iterdir())]


@FUZZ_FILES
@given(chosen=tensors, metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3))
def test_any_tensors_and_metadata_round_trip_exactly(tmp_path_factory: pytest.TempPathFactory,
                                                    chosen: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    path = tmp_path_factory.mktemp("round") / "x.safetensors"
    save_tensors(path, chosen, FORMAT, metadata)
    loaded, meta = load_tensors(path, FORMAT, "checkpoint")
    assert meta == {**metadata, "format": FORMAT}
    assert set(loaded) == set(chosen)
    for name, tensor in chosen.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)


@FUZZ_FILES
@given(data=st.data())
def test_a_checkpoint_with_bytes_flipped_cut_or_spliced_loads_or_is_a_checkpoint_error(
        tmp_path_factory: pytest.TempPathFactory, seeds: list[bytes], data: st.DataObject) -> None:
    path = tmp_path_factory.mktemp("mutated") / "head.safetensors"
    path.write_bytes(data.draw(mutated_bytes(seeds)))
    fmt = data.draw(st.sampled_from([FORMAT, "streamrec-head-1", "streamrec-cooccurrence-1"]))
    try:
        loaded, metadata = load_tensors(path, fmt, "head checkpoint")
    except CheckpointError as exc:
        assert "head checkpoint" in str(exc) and exc.reason == "checkpoint"
        return
    assert metadata["format"] == fmt and all(isinstance(t, torch.Tensor) for t in loaded.values())


def rewritten(path: Path, **metadata: str | None) -> Path:
    """``path`` saved again with ``metadata`` changed (None: dropped); well-formed, odd inside."""
    with safe_open(str(path), framework="pt") as fh:
        old = dict(fh.metadata() or {})
    tensors = load_file(str(path))
    fmt = old.pop("format")
    changed = {k: v for k, v in {**old, **metadata}.items() if v is not None}
    save_tensors(path, tensors, fmt, changed)
    return path


@pytest.mark.parametrize(("name", "metadata"), [
    ("head", {"enc_dim": "four"}), ("item_vectors", {"item_ids": "not json"}),
    ("cooccurrence", {"item_ids": "not json"}), ("sparse_cooccurrence", {"slots": "many"}),
    ("ranker", {"features": None}),
])
def test_a_component_file_with_bad_metadata_is_a_checkpoint_error(tmp_path: Path, name: str,
                                                                  metadata: dict[str, str | None]) -> None:
    path = tmp_path / f"{name}.safetensors"
    COMPONENTS[name]().save(path, [f"i{n}" for n in range(4)])
    rewritten(path, **metadata)
    with pytest.raises(CheckpointError):
        COMPONENTS[name]().load(path, Catalog().index_of)


def test_each_component_file_loads_when_its_metadata_is_left_alone(tmp_path: Path) -> None:
    """The test above fails for its metadata, not for its setup."""
    for name, make in COMPONENTS.items():
        path = tmp_path / f"{name}.safetensors"
        make().save(path, [f"i{n}" for n in range(4)])
        make().load(rewritten(path), Catalog().index_of)
