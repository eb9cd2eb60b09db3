"""The trainer role (``kafka.role: trainer``): learn from every event, publish the model.

Scaled out, one trainer reads every partition of the input topic (``assign``, outside the
scorers' group: it commits under ``<group>-trainer``) and runs the pipeline on each micro-batch
as a single instance would, but learning only: the head, the co-occurrence index, popularity and
the ranker learn; it makes no recommendations, which is what the scorers spend their time on.
At most every ``kafka.model_interval_seconds``, while it has learned something new, it
publishes a snapshot to the model topic (:mod:`streamrec.kafka.model_topic`) with the input
offsets it has learned up to, then commits those offsets. The windows travel in the snapshot
(the trainer holds every user's, up to ``window.max_users``), not in a changelog.

Crashes: offsets are committed only after the snapshot that learned them is on the broker, and
a starting trainer resumes from the newest snapshot's own offsets (not the group's commits,
which can lag it by one snapshot). So a kill -9 loses no learning: what it had learned since
its last snapshot is learned again from the log, once. The scorers keep serving the last
snapshot meanwhile. Bad messages are skipped here (the scorers dead-letter them).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamrec.config import Settings
from streamrec.errors import ConfigError
from streamrec.kafka.batch import Batch, Received
from streamrec.kafka.clients import admin_config, consumer_config, instance_id, producer_config
from streamrec.kafka.items import ItemsTopic
from streamrec.kafka.model_topic import ModelReader, ModelWriter, Snapshot, ensure_model_topic
from streamrec.kafka.offsets import commit, committed_offsets
from streamrec.kafka.topics import partition_count
from streamrec.monitoring import Telemetry
from streamrec.pipeline import Pipeline

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
COMMIT_TIMEOUT_S = 30.0


@dataclass
class TrainerStats:
    events_processed: int = 0
    batches: int = 0
    bad_messages: int = 0
    snapshots: int = 0
    snapshot_bytes: int = 0
    resumed_from_version: int | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Trainer:
    """Learns from every event and publishes the model; :meth:`run` blocks until :meth:`stop`.

    >>> Trainer(load_settings(), pipeline).run()  # doctest: +SKIP
    """

    def __init__(self, settings: Settings, pipeline: Pipeline, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.kafka = settings.kafka
        self.pipeline = pipeline
        self.telemetry = telemetry or Telemetry(settings)
        self.stats = TrainerStats()
        self.source = instance_id(settings) or f"{socket.gethostname()}-{os.getpid()}"
        self.offsets: dict[int, int] = {}  # input partition -> next offset to learn
        self._stop = threading.Event()
        self._ready = False
        self._new: tuple[int, int] | None = None  # Kafka timestamps (ms) of events learned since the last snapshot
        self._last_publish = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def readiness(self) -> tuple[bool, str]:
        return (True, "learning") if self._ready else (False, "loading the model and assigning partitions")

    def run(self, max_runtime_s: float | None = None) -> TrainerStats:
        deadline = None if max_runtime_s is None else time.monotonic() + max_runtime_s
        kafka = self.kafka
        ensure_model_topic(self.settings)
        partitions = partition_count(AdminClient(admin_config(self.settings)), kafka.input_topic)
        if partitions is None:
            raise ConfigError(f"input topic {kafka.input_topic!r} does not exist on {kafka.bootstrap_servers}")
        items = ItemsTopic(self.settings, kafka.items_topic) if kafka.items_topic else None
        if items is not None:
            self.pipeline.add_items(items.bootstrap())
        writer = self._resume()
        consumer = Consumer(consumer_config(self.settings, f"{kafka.group}-trainer", in_group=False))
        try:
            self._assign(consumer, partitions)
            self._ready = True
            while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if items is not None:
                    self.pipeline.add_items(items.poll())
                self._learn(consumer)
                if self._new is not None and time.monotonic() - self._last_publish >= kafka.model_interval_seconds:
                    self._publish(writer, consumer)
            if self._new is not None:
                self._publish(writer, consumer)
        finally:
            self._ready = False
            consumer.close()
            writer.producer.flush(kafka.shutdown_timeout_seconds)
            if items is not None:
                items.close()
        log.info("trainer stopped; stats %s", self.stats.as_dict())
        return self.stats

    def _resume(self) -> ModelWriter:
        """Load the newest snapshot (the model and the windows) and where it had got to."""
        reader = ModelReader(self.settings)
        try:
            snapshot = reader.read_to_end(START_TIMEOUT_S)
            if snapshot is not None:
                reader.load(self.pipeline, with_windows=True)
                self.offsets = dict(snapshot.offsets)
                self.stats.resumed_from_version = snapshot.version
                log.info("resumed from model v%d (snapshot %s, offsets %s)", snapshot.version, snapshot.id,
                         snapshot.offsets)
            stale = reader.live - set(snapshot.keys() if snapshot is not None else ())
        finally:
            reader.close()
        self.telemetry.metrics.model_version.set(self.pipeline.head.version)
        return ModelWriter(self.settings, Producer(producer_config(self.settings)), self.source, stale)

    def _assign(self, consumer: Consumer, partitions: int) -> None:
        topic = self.kafka.input_topic
        if not self.offsets:  # no snapshot: the group's commits, if any (from an earlier trainer's snapshots)
            committed = committed_offsets(consumer, [TopicPartition(topic, p) for p in range(partitions)],
                                          COMMIT_TIMEOUT_S)
            self.offsets = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
        consumer.assign([TopicPartition(topic, p, self.offsets.get(p, OFFSET_BEGINNING)) for p in range(partitions)])
        log.info("trainer reads %s partitions 0-%d from %s", topic, partitions - 1, self.offsets or "the beginning")

    def _learn(self, consumer: Consumer) -> None:
        batch_settings = self.settings.batch
        messages = consumer.consume(batch_settings.max_size, batch_settings.max_wait_ms / 1000)
        now_ms = int(time.time() * 1000)
        received = []
        for message in messages:
            error = message.error()
            if error is None:
                received.append(Received(message, now_ms))
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("consuming %s: %s", self.kafka.input_topic, error)
        if not received:
            return
        batch = Batch.assemble(received, self.pipeline.vocab, self.kafka.input_format, self.kafka.max_event_bytes)
        self.stats.bad_messages += len(batch.bad)
        if batch.forget:  # its next snapshot holds no window of theirs (streamrec.forget)
            forgotten = list(dict.fromkeys(user for _, user in batch.forget))
            self.telemetry.metrics.users_forgotten.inc(sum(user in self.pipeline.windows for user in forgotten))
            self.pipeline.drop_users(forgotten)
        if batch.events:
            result = self.pipeline.process(batch.events, serve=False)  # learning only: the scorers serve
            metrics = self.telemetry.metrics
            metrics.model_version.set(self.pipeline.head.version)
            if result.loss is not None:
                metrics.model_loss.set(result.loss)
            self.stats.events_processed += len(batch.events)
            times = [int(origin["timestamp"]) for origin in batch.origins]
            low, high = min(times), max(times)
            self._new = (low, high) if self._new is None else (min(self._new[0], low), max(self._new[1], high))
        self.offsets.update(batch.next_offsets)
        self.stats.batches += 1
        if self._new is None:  # only bad messages: their offsets move on with the next snapshot
            self._new = (now_ms, now_ms)

    def _publish(self, writer: ModelWriter, consumer: Consumer) -> Snapshot:
        before = writer.bytes_published
        snapshot = writer.publish(self.pipeline, self.offsets, self._new)
        self._new, self._last_publish = None, time.monotonic()
        # the group's commits only guide a trainer that finds no snapshot; a failed one is logged
        commit(consumer, [TopicPartition(self.kafka.input_topic, p, o) for p, o in self.offsets.items()])
        metrics = self.telemetry.metrics
        metrics.model_snapshots.labels(action="published").inc()
        metrics.model_bytes.labels(direction="written").inc(writer.bytes_published - before)
        self.stats.snapshots += 1
        self.stats.snapshot_bytes += writer.bytes_published - before
        log.info("published model v%d (%d bytes, offsets %s)", snapshot.version, writer.bytes_published - before,
                 snapshot.offsets)
        return snapshot
