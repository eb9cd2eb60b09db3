"""What a checkpoint of the pipeline holds, and how it is written and read.

One file per component in the state directory (``kafka.checkpoint_interval_seconds`` and at
shutdown for the service; at the end of a replay), each written atomically (temp file, then
rename), each naming its rows by item id so a catalogue indexed in another order still loads:

=====================================  ==================================================
``item_vectors.safetensors``           the encoder's item text vectors, with their texts' hashes
``head.safetensors``                   the two-tower head, Adam moments, replay buffer, version
``cooccurrence.safetensors``           the co-occurrence index, dense or sparse (its own format)
``ranker.safetensors``                 the ranker's feature weights and Adam moments
``text_index.usearch``                 candidates mode: the HNSW graph over item text vectors
``windows.msgpack``                    every user's window (the replay; Kafka keeps them in the
                                       changelog)
``state.json``                         written last: format, encoder probe, each file's SHA-256
                                       (:mod:`streamrec.manifest`), checked before anything loads
=====================================  ==================================================

A head trained on another catalogue (none of its items in the live, non-empty catalogue) is
refused; a partial overlap loads, items matched by id (the others stay, without text).

A sparse co-occurrence file loads into a pipeline that started with a dense index (the index
becomes sparse: the catalogue outgrew the dense one before the restart); the text graph is
reused when it holds exactly the encoded items, else rebuilt from the item vectors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from streamrec.checkpoint import format_of, metadata_of
from streamrec.cooccurrence import ItemCooccurrence
from streamrec.errors import CheckpointError
from streamrec.manifest import check_encoder, check_files, read_manifest, write_manifest
from streamrec.sparse_cooccurrence import FORMAT as SPARSE_FORMAT
from streamrec.sparse_cooccurrence import SparseCooccurrence

if TYPE_CHECKING:
    from streamrec.pipeline import Pipeline

log = logging.getLogger(__name__)

HEAD_FILE = "head.safetensors"
ITEMS_FILE = "item_vectors.safetensors"
COOCCURRENCE_FILE = "cooccurrence.safetensors"
RANKER_FILE = "ranker.safetensors"
TEXT_INDEX_FILE = "text_index.usearch"
WINDOWS_FILE = "windows.msgpack"


class Checkpointed(Protocol):
    """A component saved to and loaded from one file of the state directory."""

    def save(self, path: Path, item_ids: list[str]) -> None: ...
    def load(self, path: Path, index_of: Callable[[str], int]) -> object: ...


def components(pipeline: Pipeline) -> dict[str, Checkpointed]:
    """What a checkpoint holds beside the windows, by file name, in load order."""
    parts: dict[str, Checkpointed] = {ITEMS_FILE: pipeline.item_vectors, HEAD_FILE: pipeline.head}
    if pipeline.cooccurrence is not None:
        parts[COOCCURRENCE_FILE] = pipeline.cooccurrence
    parts[RANKER_FILE] = pipeline.ranker
    return parts


def encoder_identity(pipeline: Pipeline) -> dict[str, object]:
    """The manifest's encoder entry: name, dimension, and the probe sentence's vector."""
    from streamrec.manifest import PROBE_TEXT

    probe = pipeline.encoder.encode([PROBE_TEXT])[0].float()
    return {"model": pipeline.settings.encoder.model, "dim": pipeline.encoder.dim,
            "probe": [round(float(x), 5) for x in probe]}


def save_state(pipeline: Pipeline, state: Path, with_windows: bool = True) -> None:
    state.mkdir(parents=True, exist_ok=True)
    written = list(components(pipeline))
    for name, part in components(pipeline).items():
        part.save(state / name, pipeline.catalog.ids)
    if pipeline.text_index is not None:
        pipeline.text_index.save(state / TEXT_INDEX_FILE)
        written.append(TEXT_INDEX_FILE)
    if with_windows:
        tmp = state / (WINDOWS_FILE + ".tmp")
        tmp.write_bytes(pipeline.windows.snapshot())
        tmp.replace(state / WINDOWS_FILE)
        written.append(WINDOWS_FILE)
    write_manifest(state, written, encoder_identity(pipeline))


def check_state(pipeline: Pipeline, state: Path) -> list[str]:
    """Refuse a state this pipeline must not load (:mod:`streamrec.manifest`, and a head of another
    catalogue); returns the derived files to rebuild rather than load."""
    manifest = read_manifest(state)
    rebuild: list[str] = []
    if manifest is None:
        if any((state / name).exists() for name in [*components(pipeline), WINDOWS_FILE]):
            log.warning("%s has no state.json (written by an older streamrec): its files are not verified", state)
    else:
        identity = encoder_identity(pipeline)
        check_encoder(state, manifest, pipeline.settings.encoder.model, pipeline.encoder.dim,
                      identity["probe"])  # type: ignore[arg-type]
        rebuild = check_files(state, manifest, optional=[WINDOWS_FILE, TEXT_INDEX_FILE],
                              rebuildable=[TEXT_INDEX_FILE])
        for name in rebuild:
            log.warning("%s in %s differs from its checksum: rebuilding it", name, state)
    head = state / HEAD_FILE
    # Only a declared catalogue (items with text) can tell: ids merely seen in events may all be new.
    if head.exists() and next(iter(pipeline.catalog), None) is not None:
        ids = metadata_of(head).get("item_ids")
        saved = json.loads(ids) if ids else []
        if saved and not any(item in pipeline.catalog for item in saved):
            raise CheckpointError(f"none of the {len(saved)} items of {head} is in the catalogue of "
                                  f"{len(pipeline.catalog)} items: a state of another catalogue? use its "
                                  "catalogue, or another state_dir")
    return rebuild


def load_state(pipeline: Pipeline, state: Path) -> bool:
    """Check the state (:func:`check_state`), then load whatever checkpoint files exist; True if
    a head was loaded."""
    rebuild = check_state(pipeline, state)
    cooccurrence = state / COOCCURRENCE_FILE
    if (isinstance(pipeline.cooccurrence, ItemCooccurrence) and cooccurrence.exists()
            and format_of(cooccurrence) == SPARSE_FORMAT):
        head = pipeline.settings.head
        pipeline.use_cooccurrence(SparseCooccurrence(head.cooccurrence_history, head.cooccurrence_decay,
                                                     head.cooccurrence_slots, len(pipeline.catalog),
                                                     head.cooccurrence_half_life, head.cooccurrence_alpha))
    for name, part in components(pipeline).items():
        if (state / name).exists():
            part.load(state / name, pipeline.catalog.index_of)
    if pipeline.text_index is not None:
        _restore_text_index(pipeline, state / TEXT_INDEX_FILE, reuse=TEXT_INDEX_FILE not in rebuild)
    if (state / WINDOWS_FILE).exists():
        pipeline.restore_users((state / WINDOWS_FILE).read_bytes())
    return (state / HEAD_FILE).exists()


def _restore_text_index(pipeline: Pipeline, path: Path, reuse: bool = True) -> None:
    index = pipeline.text_index
    assert index is not None
    items, vectors = pipeline.item_vectors.encoded_items()
    if reuse and path.exists() and index.load(path, expected=len(items)):
        return
    if len(items):
        log.info("building the text index of %d items", len(items))
        index.put(items, vectors)
