"""The window encoder the settings ask for, plugged into the pipeline."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from encodingkit import TEMPLATE, close, reference, view_events

from streamrec.catalog import Catalog
from streamrec.encoding import HFEncoder, IncrementalWindowEncoder, TextWindowEncoder, make_window_encoder
from streamrec.errors import ConfigError
from streamrec.pipeline import Pipeline
from streamrec.synthetic import SyntheticLog


def test_factory_and_pipeline_use_the_configured_mode(
        make_settings: Callable[..., object], tiny_encoder: HFEncoder, catalog: Catalog,
        synthetic_log: SyntheticLog) -> None:
    text = make_settings(encoder={"mode": "text"})
    assert isinstance(make_window_encoder(text, tiny_encoder, TEMPLATE, catalog), TextWindowEncoder)  # type: ignore[arg-type]
    settings = make_settings(encoder={"mode": "incremental", "slack_events": 4}, window={"max_events": 6})
    window_encoder = make_window_encoder(settings, tiny_encoder, TEMPLATE, catalog)  # type: ignore[arg-type]
    assert isinstance(window_encoder, IncrementalWindowEncoder) and window_encoder.slack_events == 4
    item = make_window_encoder(make_settings(encoder={"mode": "item"}), tiny_encoder, TEMPLATE, catalog)  # type: ignore[arg-type]
    assert isinstance(item, IncrementalWindowEncoder) and item.mode == "item"
    with pytest.raises(ConfigError, match="transformers encoder"):
        make_window_encoder(settings, object(), TEMPLATE, catalog)  # type: ignore[arg-type]
    pipeline = Pipeline(settings, tiny_encoder, catalog, window_encoder=window_encoder)  # type: ignore[arg-type]
    for start in range(0, 96, 16):
        pipeline.process(synthetic_log.events[start:start + 16])
    for user in {e.user_id for e in synthetic_log.events[:96]}:
        close(pipeline._window_vectors[user], reference(tiny_encoder, catalog, view_events(window_encoder, user)))
