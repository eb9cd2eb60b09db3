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
=====================================  ==================================================

A sparse co-occurrence file loads into a pipeline that started with a dense index (the index
becomes sparse: the catalogue outgrew the dense one before the restart); the text graph is
reused when it holds exactly the encoded items, else rebuilt from the item vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from streamrec.checkpoint import format_of
from streamrec.cooccurrence import ItemCooccurrence
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


def save_state(pipeline: Pipeline, state: Path, with_windows: bool = True) -> None:
    state.mkdir(parents=True, exist_ok=True)
    for name, part in components(pipeline).items():
        part.save(state / name, pipeline.catalog.ids)
    if pipeline.text_index is not None:
        pipeline.text_index.save(state / TEXT_INDEX_FILE)
    if with_windows:
        tmp = state / (WINDOWS_FILE + ".tmp")
        tmp.write_bytes(pipeline.windows.snapshot())
        tmp.replace(state / WINDOWS_FILE)


def load_state(pipeline: Pipeline, state: Path) -> bool:
    """Load whatever checkpoint files exist; True if a head was loaded."""
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
        _restore_text_index(pipeline, state / TEXT_INDEX_FILE)
    if (state / WINDOWS_FILE).exists():
        pipeline.restore_users((state / WINDOWS_FILE).read_bytes())
    return (state / HEAD_FILE).exists()


def _restore_text_index(pipeline: Pipeline, path: Path) -> None:
    index = pipeline.text_index
    assert index is not None
    items, vectors = pipeline.item_vectors.encoded_items()
    if path.exists() and index.load(path, expected=len(items)):
        return
    if len(items):
        log.info("building the text index of %d items", len(items))
        index.put(items, vectors)
