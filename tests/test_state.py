"""Checkpoints of the whole pipeline: every component's file, a restart that recommends the same,
a sparse index that outlives the dense one it replaced, and a text graph rebuilt when missing."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

import streamrec.pipeline
from streamrec.ann import TextIndex
from streamrec.catalog import Catalog
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.pipeline import Pipeline
from streamrec.sparse_cooccurrence import SparseCooccurrence
from streamrec.state import COOCCURRENCE_FILE, HEAD_FILE, ITEMS_FILE, RANKER_FILE, TEXT_INDEX_FILE, WINDOWS_FILE
from streamrec.synthetic import SyntheticLog

MakeSettings = Callable[..., Settings]
CANDIDATES = {"mode": "candidates", "candidates_cooccurrence": 12, "candidates_text": 8}


def _ranked(pipeline: Pipeline, users: list[str]) -> list[list[str]]:
    return [[item.item_id for item in rec.items] for rec in pipeline.recommend(users)]


def test_a_candidates_pipeline_restarts_into_the_same_recommendations(
        make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # inserted in parallel, an HNSW graph differs run to run; one thread builds the same graph every time
    monkeypatch.setattr(streamrec.pipeline, "TextIndex", partial(TextIndex, threads=1))
    settings = make_settings(retrieval=CANDIDATES)
    first = Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items))
    for start in range(0, 400, 32):
        first.process(synthetic_log.events[start:start + 32])
    first.save(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {HEAD_FILE, ITEMS_FILE, COOCCURRENCE_FILE, RANKER_FILE, TEXT_INDEX_FILE, WINDOWS_FILE} <= names
    users = sorted(first.windows.users())[:8]

    second = Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items))
    assert second.load(tmp_path)
    assert second.text_index is not None and len(second.text_index) == first.item_vectors.encoded
    assert _ranked(second, users) == _ranked(first, users)

    (tmp_path / TEXT_INDEX_FILE).unlink()  # the graph is a cache: rebuilt from the item vectors
    third = Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items))
    third.load(tmp_path)
    assert third.text_index is not None and len(third.text_index) == first.item_vectors.encoded
    assert _ranked(third, users) == _ranked(first, users)


def test_a_sparse_index_loads_into_a_pipeline_that_started_dense(
        make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog, tmp_path: Path) -> None:
    sparse = Pipeline(make_settings(head={"cooccurrence_index": "sparse"}), tiny_encoder, Catalog(synthetic_log.items))
    for start in range(0, 300, 32):
        sparse.process(synthetic_log.events[start:start + 32])
    sparse.save(tmp_path)
    restarted = Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))  # auto: dense at start
    assert not isinstance(restarted.cooccurrence, SparseCooccurrence)
    restarted.load(tmp_path)
    assert isinstance(restarted.cooccurrence, SparseCooccurrence)
    users = sorted(sparse.windows.users())[:5]
    assert _ranked(restarted, users) == _ranked(sparse, users)


def test_loading_an_empty_state_dir_is_a_fresh_start(make_settings: MakeSettings, tiny_encoder: HFEncoder,
                                                     synthetic_log: SyntheticLog, tmp_path: Path) -> None:
    """``streamrec replay --state-dir`` on its first run: nothing to load, nothing fails."""
    pipeline = Pipeline(make_settings(retrieval=CANDIDATES), tiny_encoder, Catalog(synthetic_log.items))
    assert not pipeline.load(tmp_path / "nothing-yet")
    assert pipeline.text_index is not None and len(pipeline.text_index) == 0
    assert pipeline.process(synthetic_log.events[:32]).recommendations
