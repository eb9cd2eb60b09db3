"""The public test helpers: what a user's own integration test leans on must itself be right."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModel, AutoTokenizer

from streamrec.synthetic import SyntheticLog
from streamrec.testing import ListSink, ListSource, ManualClock, Runner, tiny_model, tiny_pipeline


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(5.0)
    assert clock() == clock() == 5.0
    assert clock.advance(2.5) == 7.5 and clock() == 7.5


def test_tiny_model_loads_through_from_pretrained_and_knows_the_items(tmp_path: Path,
                                                                      synthetic_log: SyntheticLog) -> None:
    path = tiny_model(synthetic_log.items[:20], tmp_path / "model")
    model, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "gpt2" and model.config.n_layer == 2
    title = synthetic_log.items[0].title
    assert len(tokenizer(title)["input_ids"]) < len(title)  # the tokenizer learned the titles' pieces


def test_a_pipeline_on_the_manual_clock_stamps_its_time(tmp_path: Path, synthetic_log: SyntheticLog) -> None:
    clock = ManualClock(1_000.0)
    pipeline = tiny_pipeline(synthetic_log.items, tmp_path, clock=clock, batch={"max_size": 8})
    sink = ListSink()
    events = synthetic_log.events[:16]
    source = ListSource(events[:8], size=pipeline.settings.batch.max_size)
    Runner(pipeline, source, sink).run()
    clock.advance(60)
    Runner(pipeline, ListSource(events[8:], size=8), sink).run()
    assert sink.events == 16 and len(sink.results) == 2
    stamps = [{rec.produced_at for rec in result.recommendations} for result in sink.results]
    assert stamps == [{1_000_000}, {1_060_000}]
    assert pipeline.settings.batch.max_size == 8  # settings overrides reach the pipeline
