"""Pooled windows: each item's text encoded once, a window the weighted mean of its items' vectors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from encodingkit import TEMPLATE, close

from streamrec.catalog import Catalog
from streamrec.encoding import HFEncoder, PooledWindowEncoder, make_window_encoder
from streamrec.errors import ConfigError
from streamrec.events import Event
from streamrec.pipeline import Pipeline
from streamrec.synthetic import SyntheticLog


class CountingEncoder:
    """The tiny GPT-2, counting the texts it is handed."""

    def __init__(self, encoder: HFEncoder) -> None:
        self.inner = encoder
        self.dim = encoder.dim
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> torch.Tensor:
        self.texts.extend(texts)
        return self.inner.encode(texts)


def expected(pipeline: Pipeline, events: list[Event], decay: float) -> torch.Tensor:
    rows = pipeline.item_vectors.current()
    weights = pipeline.vocab.weights
    n = len(events)
    total = torch.zeros(rows.shape[1])
    norm = 0.0
    for p, event in enumerate(events):
        w = weights.get(event.action, 0.0) * decay ** (n - 1 - p)
        total += w * rows[pipeline.catalog.index_of(event.item_id)]
        norm += w
    return total / norm


def test_pipeline_pools_item_vectors_and_never_encodes_a_window(
        make_settings: Callable[..., object], tiny_encoder: HFEncoder, catalog: Catalog,
        synthetic_log: SyntheticLog) -> None:
    settings = make_settings(encoder={"mode": "pooled", "pool_decay": 0.7}, window={"max_events": 6})
    counting = CountingEncoder(tiny_encoder)
    pipeline = Pipeline(settings, counting, catalog)  # type: ignore[arg-type]
    assert isinstance(pipeline.window_encoder, PooledWindowEncoder)
    for start in range(0, 160, 16):
        pipeline.process(synthetic_log.events[start:start + 16])
    item_texts = {pipeline.item_vectors.item_text(i) for i in range(len(catalog))}
    assert counting.texts and set(counting.texts) <= item_texts  # item texts only, each once
    assert len(counting.texts) == len(set(counting.texts))
    users = {e.user_id for e in synthetic_log.events[:160]}
    for user in users:
        window = list(pipeline.windows.window(user))
        close(pipeline._window_vectors[user], expected(pipeline, window, 0.7))
    # a purchase moves the window towards its item more than a view of the same item would
    user = next(iter(users))
    last = pipeline.windows.window(user)[-1]
    item = next(i for i in catalog.ids if i != last.item_id)
    target = pipeline.item_vectors.current()[catalog.index_of(item)]
    before = torch.dist(pipeline._window_vectors[user], target)
    pipeline.process([Event(user, item, "purchase", last.timestamp + 1)])
    after_purchase = torch.dist(pipeline._window_vectors[user], target)
    assert after_purchase < before


def test_actions_without_weight_count_for_nothing_and_empty_windows_are_zero(catalog: Catalog) -> None:
    rows = torch.eye(3)

    class Rows:
        def ensure(self, indices: object, limit: int | None = None) -> None:
            return None

        def current(self) -> torch.Tensor:
            return rows

    small = Catalog(list(catalog)[:3])
    ids = small.ids
    pooled = PooledWindowEncoder(Rows(), small, {"play": 1.0, "skip": 0.0}, decay=0.5)
    out = pooled.encode_windows(["a", "b"], [[Event("a", ids[0], "play", 0), Event("a", ids[1], "skip", 1),
                                              Event("a", ids[2], "play", 2)], []])
    close(out[0], torch.tensor([0.2, 0.0, 0.8]))  # weights 0.5**2 and 1 (the skip: 0), normalised
    assert out[1].abs().sum() == 0
    assert pooled.dim == 3 and pooled.cache_bytes == 0


def test_pooled_needs_the_pipelines_item_vectors(make_settings: Callable[..., object], tiny_encoder: HFEncoder,
                                                 catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="through Pipeline"):
        make_window_encoder(make_settings(encoder={"mode": "pooled"}), tiny_encoder, TEMPLATE, catalog)  # type: ignore[arg-type]
