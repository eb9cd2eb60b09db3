"""The one loop: a source's batches through the real pipeline into a sink, once each, in order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from streamrec.catalog import Catalog
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.events import Event
from streamrec.pipeline import BatchResult, Pipeline
from streamrec.runner import EventBatch, ListSource, Runner
from streamrec.synthetic import SyntheticLog
from streamrec.testing import ListSink


@pytest.fixture()
def pipeline(make_settings: Callable[..., Settings], tiny_encoder: HFEncoder,
             synthetic_log: SyntheticLog) -> Pipeline:
    return Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))


@pytest.fixture()
def events(synthetic_log: SyntheticLog) -> list[Event]:
    return synthetic_log.events[:100]


class Recording(ListSink):
    """A list sink that also keeps each batch's events and ``lost``."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[Event]] = []
        self.lost: list[set[int]] = []

    def write(self, batch: Any, result: BatchResult, lost: Collection[int]) -> None:
        super().write(batch, result, lost)
        self.batches.append(list(batch.events))
        self.lost.append(set(lost))


def test_every_batch_is_processed_and_written_once_in_order(pipeline: Pipeline, events: list[Event]) -> None:
    sink = Recording()
    seen: list[int] = []
    Runner(pipeline, ListSource(events, size=32), sink, before=lambda b: seen.append(b.size)).run()
    assert [len(b) for b in sink.batches] == seen == [32, 32, 32, 4]
    assert [e for b in sink.batches for e in b] == events
    assert sink.events == len(events) and sum(r.added for r in sink.results) == len(events)
    assert {rec.user_id for rec in sink.recommendations} == {e.user_id for e in events}
    assert len(pipeline.windows) == len({e.user_id for e in events})


def test_a_generator_streams_in_the_same_batches_as_a_list(pipeline: Pipeline, events: list[Event]) -> None:
    taken: list[int] = []

    def stream() -> Iterator[Event]:  # never more than a batch read ahead of the pipeline
        for n, event in enumerate(events):
            taken.append(n)
            yield event

    sink = Recording()
    source = ListSource(stream(), size=32)
    first = source.next_batch()
    assert first is not None and len(first.events) == 32 and len(taken) == 32  # read lazily
    Runner(pipeline, source, sink).run()
    assert [len(b) for b in sink.batches] == [32, 32, 4] and [e for b in sink.batches for e in b] == events[32:]


def test_a_stop_finishes_the_batch_in_flight_and_starts_no_other(pipeline: Pipeline, events: list[Event]) -> None:
    sink = Recording()
    runner = Runner(pipeline, ListSource(events, size=10), sink)
    runner.before = lambda batch: runner.stop() if len(sink.batches) == 2 else None  # while the third starts
    runner.run()
    assert len(sink.batches) == 3 and sink.events == 30


class IdleThenEvents:
    """Two empty polls (nothing arrived in time), then the events, then the end."""

    def __init__(self, events: list[Event]) -> None:
        self.batches: list[EventBatch] = [EventBatch([]), EventBatch([]), EventBatch(events)]
        self.idle_polls = 0

    def next_batch(self) -> EventBatch | None:
        return self.batches.pop(0) if self.batches else None

    def wait(self, running: Future[BatchResult]) -> None:
        running.result()


def test_empty_polls_are_not_processed_but_housekeeping_runs(pipeline: Pipeline, events: list[Event]) -> None:
    sink, source = Recording(), IdleThenEvents(events[:5])
    between: list[int] = []
    Runner(pipeline, source, sink, between=lambda: between.append(len(sink.batches))).run()
    assert len(sink.batches) == 1 and between == [0, 0, 0, 1]  # before each poll, the last one ends it


class Gated:
    """The real pipeline, held back until the source's ``wait`` opens the gate: a batch that
    is still running when the source is asked to wait (as a slow batch is under Kafka)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.gate = threading.Event()

    def process(self, events: list[Event]) -> BatchResult:
        assert self.gate.wait(30), "the source never waited"
        self.gate.clear()
        return self.pipeline.process(events)


class Rebalancing(ListSource):
    """A source whose first wait delivers the batch from inside, as a rebalance callback does,
    naming partition 3 as lost."""

    runner: Runner[EventBatch]

    def __init__(self, events: list[Event], size: int, gated: Gated) -> None:
        super().__init__(events, size)
        self.gated = gated
        self.waits = 0

    def wait(self, running: Future[BatchResult]) -> None:
        self.waits += 1
        self.gated.gate.set()
        if self.waits == 1:
            self.runner.finish(lost={3})
        else:
            running.result()


def test_a_callback_inside_wait_delivers_the_batch_once(pipeline: Pipeline, events: list[Event]) -> None:
    gated = Gated(pipeline)
    source, sink = Rebalancing(events[:40], 20, gated), Recording()
    source.runner = Runner(gated, source, sink, threaded=True)  # type: ignore[arg-type]
    try:
        source.runner.run()
    finally:
        source.runner.close()
    assert [len(b) for b in sink.batches] == [20, 20]  # each once, though the first was finished early
    assert sink.lost == [{3}, set()]
    assert source.runner.in_flight is None and source.runner.longest_batch_seconds > 0
