"""``state.json``: what a state directory holds, which encoder it was trained with, and checksums.

Every save writes it last, atomically, so it describes files that are complete. A load reads it
first and refuses, with a :class:`~streamrec.errors.CheckpointError` that says what to do:

* a **newer format** than this streamrec reads (upgrade, or use another ``state_dir``);
* **another encoder**: the model name is only informative (a model may move), the check is a
  probe: one fixed sentence encoded at save time and again at load; a cosine below
  :data:`PROBE_MIN_COSINE` means other weights, whose item and window vectors would be
  silently wrong for this head;
* a **corrupt file** (truncated, bit-flipped, replaced): its SHA-256 differs from the one listed.
  The text index is derived data: a corrupt one is rebuilt instead (``rebuildable``);
* a listed file that is **missing** (except the windows, which a scorer skips on purpose).

A state written before manifests existed loads as before, with a warning that nothing was verified.
This module does not import torch (``streamrec forget`` edits a state directory without it).

>>> import tempfile
>>> state = Path(tempfile.mkdtemp())
>>> _ = (state / "head.safetensors").write_bytes(b"weights")
>>> write_manifest(state, ["head.safetensors"], {"model": "tiny", "dim": 2, "probe": [1.0, 0.0]})
>>> read_manifest(state).files["head.safetensors"]["bytes"]
7
>>> _ = (state / "head.safetensors").write_bytes(b"weighs!")
>>> corrupt_files(state, read_manifest(state))
['head.safetensors']
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamrec.errors import CheckpointError

MANIFEST_FILE = "state.json"
FORMAT = 1
PROBE_TEXT = "streamrec encoder probe: viewed a red wool scarf; added to cart a blue cotton shirt"
PROBE_MIN_COSINE = 0.99  # the same weights agree to ~1e-6 across devices and dtypes; others far less


@dataclass(frozen=True)
class Manifest:
    format: int
    encoder: dict[str, Any]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> bytes, sha256
    saved_at: str = ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(state: Path) -> Manifest | None:
    """The directory's manifest; None when it has none (a state from before manifests)."""
    path = state / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        manifest = Manifest(int(data["format"]), dict(data["encoder"]), dict(data["files"]), str(data["saved_at"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is unreadable ({exc}): restore it from a backup, or start from an "
                              "empty state_dir") from exc
    if manifest.format > FORMAT:
        raise CheckpointError(f"{state} was written by a newer streamrec (state format {manifest.format}; this "
                              f"one reads up to {FORMAT}): upgrade streamrec, or use another state_dir")
    return manifest


def write_manifest(state: Path, written: Iterable[str], encoder: dict[str, Any]) -> None:
    """Describe the files just ``written``; entries of an earlier save for files still there and
    not rewritten (the windows, when a save leaves them out) are carried over."""
    try:
        previous = read_manifest(state)
    except CheckpointError:
        previous = None
    written = list(written)
    files = {name: entry for name, entry in (previous.files if previous else {}).items()
             if name not in written and (state / name).exists()}
    for name in written:
        files[name] = {"bytes": (state / name).stat().st_size, "sha256": sha256_of(state / name)}
    data = {"format": FORMAT, "encoder": encoder, "files": dict(sorted(files.items())),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = state / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(state / MANIFEST_FILE)


def corrupt_files(state: Path, manifest: Manifest) -> list[str]:
    """Listed files present whose size or SHA-256 differs from the manifest's."""
    corrupt = []
    for name, entry in manifest.files.items():
        path = state / name
        if path.exists() and (path.stat().st_size != entry["bytes"] or sha256_of(path) != entry["sha256"]):
            corrupt.append(name)
    return corrupt


def check_files(state: Path, manifest: Manifest, optional: Sequence[str] = (),
                rebuildable: Sequence[str] = ()) -> list[str]:
    """Raise for a corrupt or missing file; returns the corrupt ``rebuildable`` ones (to rebuild)."""
    corrupt = corrupt_files(state, manifest)
    fatal = [name for name in corrupt if name not in rebuildable]
    if fatal:
        raise CheckpointError(f"{', '.join(fatal)} in {state} differ from their checksums in {MANIFEST_FILE} "
                              "(truncated or corrupted): restore the state from a backup, or start from an "
                              "empty state_dir (the model then learns again from the stream)")
    missing = [name for name in manifest.files if name not in optional and not (state / name).exists()]
    if missing:
        raise CheckpointError(f"{state} lacks {', '.join(missing)}, which {MANIFEST_FILE} lists: an incomplete "
                              "copy? restore the whole directory, or start from an empty state_dir")
    return [name for name in corrupt if name in rebuildable]


def check_encoder(state: Path, manifest: Manifest, model: str, dim: int, probe: Sequence[float]) -> None:
    """Refuse a state trained with another encoder (see the module docstring)."""
    saved = manifest.encoder
    if int(saved.get("dim", dim)) != dim:
        raise CheckpointError(f"{state} was trained with encoder {saved.get('model')!r} ({saved.get('dim')} dims), "
                              f"not {model!r} ({dim} dims): use the same encoder.model, or another state_dir")
    cosine = _cosine(saved.get("probe") or [], probe)
    if cosine < PROBE_MIN_COSINE:
        raise CheckpointError(f"{state} was trained with encoder {saved.get('model')!r}, and the one loaded now "
                              f"({model!r}) reads text differently (probe cosine {cosine:.3f} < "
                              f"{PROBE_MIN_COSINE}): its item and window vectors would not fit the head. Use the "
                              "same encoder, or another state_dir")


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b) or not a:
        return -1.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else -1.0


def refresh_file(state: Path, name: str) -> None:
    """After ``name`` was rewritten in place (``streamrec forget``): its new size and checksum."""
    manifest = read_manifest(state)
    if manifest is not None and name in manifest.files:
        write_manifest(state, [name], manifest.encoder)
