"""A state directory is checked before it loads: another encoder, another catalogue, a newer
format, a truncated or bit-flipped file and a missing one each give a clear error, never a
silently wrong model; a state from before manifests loads with a warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from streamrec.catalog import Catalog, Item
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.errors import CheckpointError
from streamrec.manifest import MANIFEST_FILE
from streamrec.pipeline import Pipeline
from streamrec.state import HEAD_FILE, ITEMS_FILE, WINDOWS_FILE
from streamrec.synthetic import SyntheticLog
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
