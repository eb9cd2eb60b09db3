"""Tensor files of the model state: exact round trips, atomic replacement, a format tag, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streamrec.checkpoint import load_tensors, save_tensors
from streamrec.errors import CheckpointError, StreamrecError

FORMAT = "streamrec-test-1"


def test_tensors_and_metadata_round_trip_exactly(tmp_path: Path) -> None:
    tensors = {"weights": torch.randn(4, 3), "ids": torch.arange(5, dtype=torch.int64),
               "half": torch.randn(2, 2).to(torch.bfloat16), "view": torch.randn(3, 4).T}  # not contiguous
    path = tmp_path / "deep" / "er" / "head.safetensors"  # parents are created
    save_tensors(path, tensors, FORMAT, {"version": "7", "items": "a,b"})
    loaded, metadata = load_tensors(path, FORMAT, "head checkpoint")
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
    assert metadata == {"version": "7", "items": "a,b", "format": FORMAT}


def test_metadata_cannot_override_the_format_tag(tmp_path: Path) -> None:
    save_tensors(tmp_path / "x.safetensors", {"w": torch.ones(1)}, FORMAT, {"format": "something-else"})
    assert load_tensors(tmp_path / "x.safetensors", FORMAT, "checkpoint")[1]["format"] == FORMAT


def test_a_save_replaces_the_file_whole_while_a_reader_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "head.safetensors"
    save_tensors(path, {"w": torch.zeros(1000)}, FORMAT, {"version": "1"})
    old_bytes = path.read_bytes()
    with path.open("rb") as reader:  # a reader of the old checkpoint (another process, a slow restore)
        save_tensors(path, {"w": torch.ones(10)}, FORMAT, {"version": "2"})
        assert reader.read() == old_bytes  # replaced, not rewritten in place
    assert load_tensors(path, FORMAT, "checkpoint")[1]["version"] == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["head.safetensors"]  # no temp file left behind


def test_a_save_goes_through_a_temp_file_that_a_crashed_save_may_have_left(tmp_path: Path) -> None:
    path = tmp_path / "head.safetensors"
    save_tensors(path, {"w": torch.zeros(3)}, FORMAT, {"version": "1"})
    (tmp_path / "head.safetensors.tmp").write_bytes(b"half a checkpoint")  # a save killed mid-write
    assert load_tensors(path, FORMAT, "checkpoint")[1]["version"] == "1"  # the checkpoint itself is intact
    save_tensors(path, {"w": torch.ones(3)}, FORMAT, {"version": "2"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.safetensors"]  # the next save took the temp over
    assert load_tensors(path, FORMAT, "checkpoint")[1]["version"] == "2"


def test_another_format_is_refused_naming_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "windows.safetensors"
    save_tensors(path, {"w": torch.ones(1)}, "streamrec-windows-1")
    with pytest.raises(CheckpointError, match=r"windows\.safetensors is not a streamrec head checkpoint"):
        load_tensors(path, "streamrec-head-1", "head checkpoint")
    with pytest.raises(CheckpointError, match="in format 'streamrec-windows-1', this streamrec reads "
                                              "'streamrec-windows-2': use the streamrec that wrote it"):
        load_tensors(path, "streamrec-windows-2", "head checkpoint")  # another version of the same kind


@pytest.mark.parametrize("content", [None, b"", b"not a checkpoint", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}"])
def test_missing_or_corrupt_files_raise_a_checkpoint_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "head.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"cannot read head checkpoint '.*head\.safetensors'") as info:
        load_tensors(path, FORMAT, "head checkpoint")
    assert isinstance(info.value, StreamrecError) and info.value.reason == "checkpoint"


def test_a_truncated_checkpoint_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "head.safetensors"
    save_tensors(path, {"w": torch.randn(256)}, FORMAT)
    path.write_bytes(path.read_bytes()[:-100])  # a disk that filled up mid-copy
    with pytest.raises(CheckpointError, match="cannot read head checkpoint"):
        load_tensors(path, FORMAT, "head checkpoint")
