"""A state directory is checked before it loads: another encoder, another catalogue, a newer
format, a truncated or bit-flipped file and a missing one each give a clear error, never a
silently wrong model; a state from before manifests loads with a warning."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streamrec.catalog import Catalog, Item
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.errors import CheckpointError
from streamrec.manifest import (
    COMMITTED,
    MANIFEST_FILE,
    STAGING,
    commit,
    corrupt_files,
    read_manifest,
    recover,
    staging,
    write_manifest,
)
from streamrec.pipeline import Pipeline
from streamrec.state import HEAD_FILE, ITEMS_FILE, WINDOWS_FILE
from streamrec.synthetic import SyntheticLog, generate
from streamrec.testing import tiny_model

MakeSettings = Callable[..., Settings]


@pytest.fixture
def saved(make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog,
          tmp_path: Path) -> Path:
    pipeline = Pipeline(make_settings(batch={"max_size": 32}), tiny_encoder, Catalog(synthetic_log.items))
    for start in range(0, 128, 32):
        pipeline.process(synthetic_log.events[start:start + 32])
    state = tmp_path / "state"
    pipeline.save(state)
    return state


def _fresh(make_settings: MakeSettings, encoder: HFEncoder, log: SyntheticLog) -> Pipeline:
    return Pipeline(make_settings(), encoder, Catalog(log.items))


def test_the_manifest_lists_every_file_with_its_checksum_and_the_encoder(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    assert manifest["format"] == 1
    assert set(manifest["files"]) == {p.name for p in saved.iterdir()} - {MANIFEST_FILE}
    assert all(len(entry["sha256"]) == 64 and entry["bytes"] > 0 for entry in manifest["files"].values())
    assert manifest["encoder"]["dim"] == 64 and len(manifest["encoder"]["probe"]) == 64


def test_a_state_loads_back_into_the_same_encoder(saved: Path, make_settings: MakeSettings,
                                                  tiny_encoder: HFEncoder, synthetic_log: SyntheticLog) -> None:
    assert _fresh(make_settings, tiny_encoder, synthetic_log).load(saved)


def test_another_encoder_of_the_same_width_is_refused(saved: Path, make_settings: MakeSettings,
                                                      synthetic_log: SyntheticLog, tmp_path: Path) -> None:
    other_dir = tiny_model(synthetic_log.items, tmp_path / "other", seed=1)
    other = HFEncoder(make_settings(encoder={"model": str(other_dir)}).encoder)
    assert other.dim == 64
    pipeline = Pipeline(make_settings(encoder={"model": str(other_dir)}), other, Catalog(synthetic_log.items))
    with pytest.raises(CheckpointError, match="reads text differently"):
        pipeline.load(saved)
    assert pipeline.head.version == 0  # nothing was loaded


@pytest.mark.parametrize("damage", ["bit flip", "truncated"])
@pytest.mark.parametrize("name", [HEAD_FILE, ITEMS_FILE])
def test_a_damaged_file_is_refused_naming_it(saved: Path, make_settings: MakeSettings, tiny_encoder: HFEncoder,
                                            synthetic_log: SyntheticLog, damage: str, name: str) -> None:
    data = bytearray((saved / name).read_bytes())
    if damage == "bit flip":
        data[-5] ^= 0x10  # inside a tensor: safetensors itself would load it without complaint
    else:
        del data[len(data) // 2:]
    (saved / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{name} in .* differ from their checksums"):
        _fresh(make_settings, tiny_encoder, synthetic_log).load(saved)


def test_a_newer_format_and_a_missing_file_are_refused(saved: Path, make_settings: MakeSettings,
                                                       tiny_encoder: HFEncoder, synthetic_log: SyntheticLog) -> None:
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    (saved / MANIFEST_FILE).write_text(json.dumps({**manifest, "format": 2}))
    with pytest.raises(CheckpointError, match=r"newer streamrec \(state format 2; this one reads up to 1\)"):
        _fresh(make_settings, tiny_encoder, synthetic_log).load(saved)
    (saved / MANIFEST_FILE).write_text(json.dumps(manifest))
    (saved / WINDOWS_FILE).unlink()  # windows are optional (a scorer's snapshot leaves them out)
    assert _fresh(make_settings, tiny_encoder, synthetic_log).load(saved)
    (saved / HEAD_FILE).unlink()
    with pytest.raises(CheckpointError, match=f"lacks {HEAD_FILE}, which {MANIFEST_FILE} lists"):
        _fresh(make_settings, tiny_encoder, synthetic_log).load(saved)


def test_a_head_of_another_catalogue_is_refused(saved: Path, make_settings: MakeSettings,
                                                tiny_encoder: HFEncoder) -> None:
    others = Catalog([Item(f"other-{n}", f"Other item {n}", "Misc") for n in range(20)])
    with pytest.raises(CheckpointError, match="of another catalogue"):
        Pipeline(make_settings(), tiny_encoder, others).load(saved)


def test_a_state_from_before_manifests_loads_with_a_warning(
        saved: Path, make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog,
        caplog: pytest.LogCaptureFixture) -> None:
    (saved / MANIFEST_FILE).unlink()
    with caplog.at_level(logging.WARNING):
        assert _fresh(make_settings, tiny_encoder, synthetic_log).load(saved)
    assert "has no state.json" in caplog.text and "not verified" in caplog.text


def _save(state: Path, files: dict[str, bytes]) -> None:
    staged = staging(state)
    for name, data in files.items():
        (staged / name).write_bytes(data)
    commit(state, list(files), {"model": "tiny", "dim": 2, "probe": [1.0, 0.0]})


def test_a_save_cut_short_before_its_commit_leaves_the_earlier_save_whole(tmp_path: Path) -> None:
    _save(tmp_path, {"head.safetensors": b"old head", "ranker.safetensors": b"old ranker"})
    staged = staging(tmp_path)  # the next save dies half written
    (staged / "head.safetensors").write_bytes(b"new head")
    recover(tmp_path)
    assert not (tmp_path / STAGING).exists() and (tmp_path / "head.safetensors").read_bytes() == b"old head"
    assert corrupt_files(tmp_path, read_manifest(tmp_path)) == []  # type: ignore[arg-type]


def test_a_save_cut_short_after_its_commit_is_finished_by_the_next_load(tmp_path: Path) -> None:
    _save(tmp_path, {"head.safetensors": b"old head", "ranker.safetensors": b"old ranker"})
    staged = staging(tmp_path)
    for name in ("head.safetensors", "ranker.safetensors"):
        (staged / name).write_bytes(b"new " + name.encode())
    write_manifest(tmp_path, ["head.safetensors", "ranker.safetensors"], {"model": "tiny"}, into=staged)
    staged.rename(tmp_path / COMMITTED)  # committed; then the process dies having moved one file in
    os.replace(tmp_path / COMMITTED / "head.safetensors", tmp_path / "head.safetensors")
    assert corrupt_files(tmp_path, read_manifest(tmp_path)) == ["head.safetensors"]  # torn until recovered
    recover(tmp_path)
    assert (tmp_path / "ranker.safetensors").read_bytes() == b"new ranker.safetensors"
    assert corrupt_files(tmp_path, read_manifest(tmp_path)) == [] and not (tmp_path / COMMITTED).exists()


SAVING_FOREVER = """
import sys
from pathlib import Path
from streamrec.catalog import Catalog
from streamrec.config import load_settings
from streamrec.encoding import HFEncoder
from streamrec.pipeline import Pipeline
from streamrec.synthetic import generate

log = generate(n_users=20, n_items=60, seed=0)
settings = load_settings(encoder={"model": sys.argv[1]}, batch={"max_size": 32})
pipeline = Pipeline(settings, HFEncoder(settings.encoder), Catalog(log.items))
for n in range(10**6):
    start = 32 * n % (len(log.events) - 32)
    pipeline.process(log.events[start:start + 32])
    pipeline.save(Path(sys.argv[2]))
    print(n, flush=True)
"""


@pytest.mark.slow
def test_a_state_killed_mid_save_at_random_moments_always_loads(make_settings: MakeSettings,
                                                                 tiny_encoder: HFEncoder, tmp_path: Path) -> None:
    """kill -9 while a process saves in a loop: every time, the state loads (the last whole save)."""
    rng = random.Random(7)
    state, items = tmp_path / "state", generate(n_users=20, n_items=60, seed=0).items
    for _ in range(5):
        saver = subprocess.Popen([sys.executable, "-c", SAVING_FOREVER, make_settings().encoder.model, str(state)],
                                 stdout=subprocess.PIPE, text=True)
        assert saver.stdout is not None
        for _ in range(rng.randint(1, 3)):  # some whole saves first
            assert saver.stdout.readline(), "the saver died"
        time.sleep(rng.uniform(0.0, 0.2))  # then a random moment, most likely inside a save
        saver.send_signal(signal.SIGKILL)
        saver.wait(30)
        assert Pipeline(make_settings(), tiny_encoder, Catalog(items)).load(state)
        assert not (state / STAGING).exists() and not (state / COMMITTED).exists()
