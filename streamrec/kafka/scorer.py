"""The scorer role (``kafka.role: scorer``): serve with the model the trainer publishes.

A scorer is the Kafka service with learning off: it consumes its share of the input
partitions, keeps its users' windows through the changelog and publishes their
recommendations, exactly as a single instance does, but its pipeline learns nothing
(:meth:`~streamrec.pipeline.Pipeline.process` with ``learn=False``). Its model comes from the
model topic (:mod:`streamrec.kafka.model_topic`): the newest snapshot when it starts, before
the first event, then each newer one between micro-batches. Windows in a snapshot are the
trainer's and are not loaded. Each recommendation carries the version it was made with.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from streamrec.config import Settings
from streamrec.kafka.model_topic import ModelReader, Snapshot, ensure_model_topic
from streamrec.metrics import Metrics

if TYPE_CHECKING:
    from streamrec.pipeline import Pipeline

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0


class ModelFollower:
    def __init__(self, settings: Settings, pipeline: Pipeline, metrics: Metrics) -> None:
        ensure_model_topic(settings)
        self.pipeline = pipeline
        self.metrics = metrics
        self.reader = ModelReader(settings)
        self._bytes_counted = 0

    def start(self) -> Snapshot | None:
        """Load the newest snapshot on the topic, if there is one (a scorer may start first)."""
        snapshot = self.reader.read_to_end(START_TIMEOUT_S)
        self._count_bytes()
        if snapshot is None:
            log.warning("no model on %s yet: serving with a fresh model until the trainer publishes one",
                        self.reader.topic)
            return None
        self._load(snapshot, delay=False)  # how long this instance was away is not the model's delay
        return snapshot

    def tick(self) -> Snapshot | None:
        """Between micro-batches: load the newest snapshot that arrived since, if any."""
        snapshot = self.reader.poll(0.0)
        self._count_bytes()
        if snapshot is not None:
            self._load(snapshot)
        return snapshot

    def _load(self, snapshot: Snapshot, delay: bool = True) -> None:
        self.reader.load(self.pipeline)
        metrics = self.metrics
        metrics.model_snapshots.labels(action="loaded").inc()
        metrics.model_version.set(self.pipeline.head.version)
        if delay and snapshot.events_from_ms is not None:
            seconds = max(0.0, time.time() - snapshot.events_from_ms / 1000)
            metrics.model_delay.observe(seconds)
        log.info("serving model v%d (snapshot %s from %s)", snapshot.version, snapshot.id, snapshot.source)

    def _count_bytes(self) -> None:
        self.metrics.model_bytes.labels(direction="read").inc(self.reader.bytes_read - self._bytes_counted)
        self._bytes_counted = self.reader.bytes_read

    def close(self) -> None:
        self.reader.close()
