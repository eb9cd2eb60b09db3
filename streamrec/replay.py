"""The embedded default: replay a recorded log through the pipeline, without Kafka.

Events are fed in timestamp order in micro-batches of ``batch.max_size``, through the loop the
Kafka service runs too (:class:`~streamrec.runner.Runner`, with a
:class:`~streamrec.runner.ListSource`). Recommendations go to a JSONL file; quality is scored
prequentially (see :mod:`streamrec.prequential`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sized
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tqdm import tqdm

from streamrec.catalog import Catalog, read_items
from streamrec.config import Settings
from streamrec.endpoints import Endpoints
from streamrec.events import ActionVocabulary, Event
from streamrec.monitoring import Telemetry
from streamrec.pipeline import BatchResult, Pipeline
from streamrec.prequential import PrequentialScore
from streamrec.runner import EventBatch, ListSource, Runner

if TYPE_CHECKING:
    from streamrec.sources import RecordedLog

log = logging.getLogger(__name__)

METRIC_K = 10
REPLAY_TOPIC = "replay"  # the topic label of replay metrics
LOG_DOMAINS = {"movielens": "video", "amazon": "ecommerce"}


class ReplaySink:
    """Where a replay's batches go: scored prequentially, written to JSONL, fed to the telemetry."""

    def __init__(self, pipeline: Pipeline, out: IO[str] | None, bar: tqdm[Any],
                 on_batch: Callable[[BatchResult], None] | None, telemetry: Telemetry | None) -> None:
        self.pipeline = pipeline
        self.out = out
        self.bar = bar
        self.on_batch = on_batch
        self.telemetry = telemetry
        self.score = PrequentialScore(METRIC_K, lambda: len(pipeline.catalog),
                                      pipeline.settings.window.max_users)
        self.totals = {"duplicates": 0, "too_late": 0, "examples": 0, "recommendations": 0}
        self.events = 0
        self.seconds = {"encode": 0.0, "train": 0.0, "rank": 0.0}
        self._consumed_at = 0.0

    def before(self, batch: EventBatch) -> None:
        self.events += batch.size
        for event in batch.events:
            self.score.observe(event.user_id, event.item_id, self.pipeline.vocab.is_positive(event.action))
        self._consumed_at = time.time()
        if self.telemetry is not None:
            self.telemetry.before_batch(batch.events)

    def write(self, batch: EventBatch, result: BatchResult, lost: Collection[int]) -> None:
        if self.telemetry is not None:
            self.telemetry.after_batch(self.pipeline, result, batch.size, REPLAY_TOPIC, self._consumed_at,
                                       event_time_latency=False)
            self.telemetry.metrics.events_consumed.labels(topic=REPLAY_TOPIC, partition="0").inc(batch.size)
        for rec in result.recommendations:
            self.score.publish(rec.user_id, [item.item_id for item in rec.items])
            if self.out is not None:
                self.out.write(rec.to_json() + "\n")
        for key in self.totals:
            self.totals[key] += len(result.recommendations) if key == "recommendations" else getattr(result, key)
        for stage, value in result.seconds.items():
            self.seconds[stage] += value
        if self.on_batch is not None:
            self.on_batch(result)
        self.bar.update(batch.size)
        if result.loss is not None:
            self.bar.set_postfix(hit10=f"{self.score.summary()['hit@10']:.3f}", loss=f"{result.loss:.2f}",
                                 refresh=False)


def replay(
    pipeline: Pipeline,
    events: Iterable[Event],
    out_path: str | Path | None = None,
    progress: bool = True,
    on_batch: Callable[[BatchResult], None] | None = None,
    telemetry: Telemetry | None = None,
) -> dict[str, Any]:
    """Run the log through the pipeline; returns the metrics dict (fixed keys, see README).

    ``events`` in time order: a list, or any iterable (a generator streams a log larger than memory).

    With ``telemetry``, each batch also feeds the Prometheus metrics, online quality and drift.
    """
    started = time.perf_counter()
    with ExitStack() as stack:
        out: IO[str] | None = None
        if out_path is not None:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
            out = stack.enter_context(Path(out_path).open("w", encoding="utf-8"))
        total = len(events) if isinstance(events, Sized) else None
        bar = stack.enter_context(tqdm(total=total, unit="ev", disable=not progress, desc="replay",
                                       dynamic_ncols=True))
        sink = ReplaySink(pipeline, out, bar, on_batch, telemetry)
        Runner(pipeline, ListSource(events, pipeline.settings.batch.max_size), sink, before=sink.before).run()
    wall = time.perf_counter() - started
    metrics = sink.score.summary()
    metrics.update(
        items=len(pipeline.catalog),
        events_per_second=sink.events / wall if wall > 0 else 0.0,
        wall_seconds=wall,
        model_version=pipeline.head.version,
        unknown_item_lookups=pipeline.catalog.unknown_lookups,
        evicted_users=pipeline.windows.stats.evicted_users,
        seconds=sink.seconds,
        **sink.totals,
    )
    generator = pipeline.scorer.candidates
    if generator is not None:  # candidates mode: what each source gave, and the stage's recall
        stats = generator.stats
        metrics["candidates"] = {"recall": stats.recall if stats.targets else None, "targets": stats.targets,
                                 "per_user": {k: v / max(stats.users, 1) for k, v in stats.contributed.items()}}
    if pipeline.served is not None:  # the ranker's events learned from what was served / scored again
        metrics["candidates"]["learned_from_served"] = pipeline.served.taken
        metrics["candidates"]["scored_again"] = pipeline.served.scored
    return metrics


def write_metrics(metrics: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def open_log(
    settings: Settings,
    log_path: str | Path,
    catalog_path: str | Path | None = None,
    log_format: str = "auto",
    column_map: Mapping[str, str] | None = None,
    limit: int | None = None,
    domain_given: bool = True,
) -> tuple[Pipeline, RecordedLog]:
    """Read a recorded log (and a catalogue file) and build the pipeline that will learn it.

    Without ``domain_given``, a log format that fixes its vocabulary sets the domain (MovieLens rates,
    Amazon sells); the pipeline's settings say which one was used.
    """
    from streamrec.encoding import HFEncoder
    from streamrec.sources import detect_format, read_log

    resolved = detect_format(log_path) if log_format == "auto" else log_format
    if not domain_given and resolved in LOG_DOMAINS:
        settings = settings.model_copy(update={"domain": LOG_DOMAINS[resolved]})
    vocab = ActionVocabulary.for_domain(settings.domain, settings.actions)
    recorded = read_log(log_path, vocab, resolved, column_map, limit)  # type: ignore[arg-type]
    for location, message in recorded.rejected[:5]:
        log.warning("rejected %s: %s", location, message)
    catalog = Catalog(recorded.items)
    if catalog_path is not None:
        for item in read_items(catalog_path):
            catalog.upsert(item)
    return Pipeline(settings, HFEncoder(settings.encoder), catalog), recorded


def replay_files(
    settings: Settings,
    log_path: str | Path,
    catalog_path: str | Path | None = None,
    log_format: str = "auto",
    column_map: Mapping[str, str] | None = None,
    limit: int | None = None,
    out_path: str | Path | None = None,
    metrics_path: str | Path | None = None,
    state_dir: str | Path | None = None,
    progress: bool = True,
    domain_given: bool = True,
    linger_seconds: float = 0.0,
) -> dict[str, Any]:
    """Everything ``streamrec replay`` does: read, build the pipeline, replay, write results.

    When ``settings.metrics_address`` is set, ``/metrics``, ``/healthz`` and ``/readyz`` are
    served while the replay runs (and ``linger_seconds`` after it, for a last scrape).
    """
    pipeline, recorded = open_log(settings, log_path, catalog_path, log_format, column_map, limit, domain_given)
    settings = pipeline.settings
    if state_dir is not None and pipeline.load(state_dir):
        log.info("resumed head v%d from %s", pipeline.head.version, state_dir)
    telemetry = Telemetry(settings)
    telemetry.metrics.bad_messages.labels(reason="schema").inc(len(recorded.rejected))
    endpoints = None
    if settings.metrics_address:
        endpoints = Endpoints(settings.metrics_address, telemetry.metrics, ready=lambda: (True, "ready")).start()
    try:
        metrics = replay(pipeline, recorded.events, out_path, progress, telemetry=telemetry)
        metrics["drifts"] = dict(telemetry.drift.detected)
        if endpoints is not None and linger_seconds > 0:
            time.sleep(linger_seconds)
    finally:
        if endpoints is not None:
            endpoints.stop()
    metrics["rejected_records"] = len(recorded.rejected)
    metrics["encoder"] = settings.encoder.model
    if state_dir is not None:
        pipeline.save(state_dir)
    if metrics_path is not None:
        write_metrics(metrics, metrics_path)
    return metrics
