"""The Kafka service: consume events, run the pipeline, publish recommendations.

Guarantees (in full, with their tests: the README's Guarantees section):

* **At-least-once (default).** After each batch: produce recommendations and dead letters, then
  changelog records, check every delivery, then commit synchronously (also inside the revoke
  callback). A delivery failure raises: nothing of the batch is committed; a restart redoes it.
* **Exactly-once (``kafka.exactly_once``).** One transaction per batch holds its records and the
  consumed offsets (with the group metadata, which fences zombies); reads are ``read_committed``.
  An abort rewinds windows (from the changelog) and positions (to the committed offsets); 3 in a
  row fail loudly. The head is not rolled back: it may have learned from an aborted batch once.
* **Order and duplicates.** Offset order per partition, recommendations keyed by ``user_id``. An
  event without ``event_id`` gets ``topic:partition:offset``; a window drops ids it has seen.
* **State follows partitions** (:mod:`streamrec.kafka.changelog`), cooperative rebalancing:
  windows restored before an assigned partition is consumed; on revoke the in-flight batch is
  finished and committed, then the users dropped; on lost nothing of theirs is written.
* **The loop** is :class:`~streamrec.runner.Runner`'s (the batch in a worker thread, the main thread
  reading ahead: :mod:`streamrec.kafka.fetcher`). **Bad messages** go to the dead-letter topic
  (:mod:`streamrec.kafka.messages`); **forget requests** drop the user and write tombstones
  (:mod:`streamrec.forget`). **Shutdown** (SIGTERM) finishes, publishes and commits the in-flight
  batch only. **Checkpoints** of the head every ``kafka.checkpoint_interval_seconds`` and at
  shutdown (windows are the changelog's). **Probes**: :mod:`streamrec.kafka.health`.
* **Limits.** A failed commit is logged, counted and retried between batches. A kill leaves at
  most one batch uncommitted. Only exactly-once fences a zombie's changelog writes. Events must
  be keyed by ``user_id``. **Scaled out** (``kafka.role: scorer``) the pipeline learns nothing: its
  model comes from the trainer (:mod:`streamrec.kafka.scorer`, :mod:`streamrec.kafka.trainer`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Collection
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, Producer, TopicPartition

from streamrec.batching import AdaptiveBatchPolicy
from streamrec.config import Settings
from streamrec.errors import ConfigError
from streamrec.kafka.batch import Batch
from streamrec.kafka.changelog import ChangelogReader, PartitionWindows, changelog_topic
from streamrec.kafka.client_logs import flush_repeats
from streamrec.kafka.clients import KafkaServiceError, consumer_config, default_transactional_id, producer_config
from streamrec.kafka.dead_letter_rate import DeadLetterRate
from streamrec.kafka.fetcher import Fetcher
from streamrec.kafka.health import READY_LAG_BATCHES, Health
from streamrec.kafka.items import ItemsTopic
from streamrec.kafka.messages import dead_letter, dead_letter_room
from streamrec.kafka.offsets import Committer, rewind
from streamrec.kafka.publisher import Publisher, TransactionAborted
from streamrec.kafka.scorer import ModelFollower
from streamrec.kafka.stats import Progress, ServiceStats
from streamrec.kafka.topics import ensure_service_topics
from streamrec.monitoring import Telemetry
from streamrec.runner import Runner

if TYPE_CHECKING:
    from streamrec.pipeline import BatchResult, Pipeline

log = logging.getLogger(__name__)

COMMITTED_TIMEOUT_S = 30.0
MAX_ABORTS_IN_A_ROW = 3
PRODUCER_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes


@dataclass
class _Running:  # the clients of one run, made by KafkaService._open
    consumer: Consumer
    fetcher: Fetcher
    publisher: Publisher
    windows: PartitionWindows
    items: ItemsTopic | None
    committer: Committer


class KafkaService:
    """Runs ``pipeline`` on the input topic until :meth:`stop` (or ``max_runtime_s``).

    >>> service = KafkaService(load_settings(), pipeline)  # doctest: +SKIP
    >>> stats = service.run()  # doctest: +SKIP

    It blocks; another thread or a signal handler calls :meth:`stop`.
    """

    def __init__(self, settings: Settings, pipeline: Pipeline, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.kafka = settings.kafka
        self.stats = ServiceStats()
        self.telemetry = telemetry or Telemetry(settings)
        metrics = self.telemetry.metrics
        self.health = Health(self.kafka.liveness_timeout_seconds, READY_LAG_BATCHES * settings.batch.max_size,
                             metrics, self.kafka.input_topic, self.kafka.broker_timeout_seconds, self.kafka.group)
        self.dead_letter_rate = DeadLetterRate(self.kafka.input_topic, metrics)
        self.progress = Progress(self.kafka.progress_interval_seconds)
        self.changelog_topic = changelog_topic(settings)
        self._stop = threading.Event()
        self._failed = False
        if self.kafka.role == "trainer":
            raise ConfigError("kafka.role trainer runs streamrec.kafka.trainer.Trainer, not the service")
        self._runner = Runner(pipeline, self, self, before=self._before, between=self._between_batches,
                              threaded=True, stopped=self._stop, learn=self.kafka.role != "scorer")
        self.follower: ModelFollower | None = None  # a scorer's model, from the trainer's topic
        self._deadline: float | None = None  # monotonic, from run's max_runtime_s
        self._batch_started = 0.0  # monotonic
        self._aborts_in_a_row = 0
        self._last_checkpoint = time.monotonic()
        self._run: _Running | None = None
        self._partitions = 0  # of the input topic, hence of the changelog
        self._processed_at_stop = 0

    def stop(self) -> None:
        """Ask for a graceful stop; safe from signal handlers and other threads."""
        if not self._stop.is_set():
            self._processed_at_stop = self.stats.events_processed
        self._stop.set()

    @property
    def running(self) -> _Running:
        assert self._run is not None, "the service is not running"
        return self._run

    # -- the loop ----------------------------------------------------------------------------

    def run(self, max_runtime_s: float | None = None) -> ServiceStats:
        self._deadline = None if max_runtime_s is None else time.monotonic() + max_runtime_s
        try:
            self._open()
            self._runner.run()
            log.info("stopping: %d events processed after the stop was asked, %d read ahead left for redelivery",
                     self.stats.events_processed - self._processed_at_stop, len(self.running.fetcher.pending))
            self._checkpoint()
            self.progress.log(self.stats, self.health.lag, self.pipeline.head.version)
        except BaseException:
            self._failed = True
            raise
        finally:
            self._close()
        return self.stats

    def _open(self) -> None:
        kafka, settings = self.kafka, self.settings
        topics = self.health.wait_for_broker(lambda: ensure_service_topics(settings, self.changelog_topic), self._stop)
        self._partitions = topics.partitions
        log.info("input %s has %d partitions; changelog %s", kafka.input_topic, topics.partitions, self.changelog_topic)
        transactional_id = default_transactional_id(settings) if kafka.exactly_once else None
        producer_settings = producer_config(settings, transactional_id, keyed=True)
        dead_letter_room(kafka.max_event_bytes, int(producer_settings.get("message.max.bytes", PRODUCER_MAX_BYTES)),
                         topics.dead_letter_max_bytes)  # raises ConfigError when they disagree
        producer_settings["error_cb"] = self.health.on_client_error  # served while a flush waits
        publisher = Publisher(Producer(producer_settings), kafka.output_topic, kafka.dead_letter_topic,
                              self.changelog_topic, kafka.output_format)
        if transactional_id is not None:
            publisher.init_transactions()  # also fences and aborts a previous incarnation's transaction
        windows = PartitionWindows(self.pipeline, ChangelogReader(settings, self.changelog_topic))
        items = None
        if kafka.items_topic:
            items = ItemsTopic(settings, kafka.items_topic)
            self.stats.items_loaded += items.feed(self.pipeline, first=True)
        if self.pipeline.load(settings.state_dir):
            log.info("loaded head v%d from %s", self.pipeline.head.version, settings.state_dir)
        stale = list(self.pipeline.windows.users())
        if stale:  # windows belong to partitions; the changelog restores the ones we get
            log.warning("dropping %d windows loaded from %s: the changelog owns windows", len(stale),
                        settings.state_dir)
            self.pipeline.drop_users(stale)
        if kafka.role == "scorer":  # the newest model on the topic before the first event
            self.follower = ModelFollower(settings, self.pipeline, self.telemetry.metrics)
            self.follower.start()
        config = consumer_config(settings)
        config.setdefault("statistics.interval.ms", int(kafka.statistics_interval_seconds * 1000))
        config.update(stats_cb=self.health.on_statistics, error_cb=self.health.on_client_error)
        consumer = Consumer(config)
        batch = settings.batch
        policy = AdaptiveBatchPolicy(max_size=batch.max_size, max_wait_ms=batch.max_wait_ms) if batch.adaptive else None
        fetcher = Fetcher(consumer, kafka.input_topic, batch.max_size, batch.max_wait_ms, self._stop, policy,
                          group=kafka.group)
        self._run = _Running(consumer, fetcher, publisher, windows, items, Committer(consumer, kafka.input_topic))
        consumer.subscribe([kafka.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_lost)

    def _between_batches(self) -> None:
        self.health.turn()  # raises once the broker is gone past kafka.broker_timeout_seconds
        if self.follower is not None:
            self.follower.tick()
        if self._deadline is not None and time.monotonic() > self._deadline:
            log.info("max runtime reached, stopping")
            self.stop()
            return
        if self.running.items is not None:
            self.stats.items_loaded += self.running.items.feed(self.pipeline)
            self.stats.bad_items = self.running.items.bad_records
        if self.running.committer.pending:  # a commit failed in a rebalance: retried, partitions still ours
            self._commit([])
        if time.monotonic() - self._last_checkpoint >= self.kafka.checkpoint_interval_seconds:
            self._checkpoint()
        if self.progress.due():
            self.progress.log(self.stats, self.health.lag, self.pipeline.head.version)
        flush_repeats()

    # -- one batch: the runner's source and sink ---------------------------------------------

    def next_batch(self) -> Batch:
        """The consumer's next micro-batch; empty after an idle poll or a stop (what was read ahead
        is left for redelivery)."""
        received = self.running.fetcher.collect()
        if not received or self._stop.is_set():
            return Batch()
        kafka = self.kafka
        self.health.broker_up()  # messages arrived
        batch = Batch.assemble(received, self.pipeline.vocab, kafka.input_format, kafka.max_event_bytes)
        self.stats.events_consumed += batch.size
        consumed = self.telemetry.metrics.events_consumed
        for partition, count in Counter(int(r.message.partition() or 0) for r in received).items():
            consumed.labels(topic=kafka.input_topic, partition=str(partition)).inc(count)
        return batch

    def _before(self, batch: Batch) -> None:
        self.telemetry.before_batch(batch.events)  # prequential: score before the pipeline learns
        if batch.forget:  # before the pipeline runs: their earlier events are gone from the batch
            forgotten = [user for _, user in batch.forget]
            held = self.running.windows.forget(forgotten)
            self.telemetry.forget(forgotten, held)
            self.stats.forgotten_users += held
        for partition, users in batch.users.items():  # a forgotten user's later events: tracked anew
            for user in users:
                self.running.windows.owners.add(partition, user)
        self._batch_started = time.monotonic()
        self.health.batch_started()

    def wait(self, running: Future[BatchResult]) -> None:
        self.running.fetcher.read_ahead(running, self._batch_started)
        self.health.turn()

    def write(self, batch: Batch, result: BatchResult, lost: Collection[int]) -> None:
        self._publish(batch.without(lost), result, set(lost))
        elapsed = time.monotonic() - self._batch_started  # from start to commit
        self.stats.longest_batch_seconds = max(self.stats.longest_batch_seconds, elapsed)
        self.running.fetcher.observe_batch(batch.size, elapsed)
        self.running.fetcher.resume()
        self.health.batch_finished()

    def _publish(self, batch: Batch, result: BatchResult, lost: set[int]) -> None:
        publisher, exactly_once = self.running.publisher, self.kafka.exactly_once
        recommendations = [dataclasses.replace(rec, source=batch.sources[rec.user_id])
                           for rec in result.recommendations if rec.user_id in batch.sources]
        offsets = [TopicPartition(self.kafka.input_topic, p, o) for p, o in sorted(batch.next_offsets.items())]
        if exactly_once:
            publisher.begin()
        for partition, user in batch.forget:  # tombstones before anything new of theirs
            publisher.forget(partition, user)
        for rec in recommendations:
            publisher.recommendation(rec)
        for bad in batch.bad:
            message = bad.message
            publisher.dead_letter(dead_letter(message.key(), message.value(), message.headers(), bad.error,
                                              message.topic() or "", message.partition() or 0,
                                              message.offset() or 0, self.kafka.max_event_bytes))
            self.stats.bad_messages[bad.error.reason] += 1
        if not exactly_once:
            with self.health.waiting_on_broker("the delivery of a batch"):
                publisher.confirm()  # recommendations before windows: a persisted window implies its output
        changelog = 0
        for partition, users in batch.users.items():
            for user in users:
                snapshot = self.pipeline.windows.snapshot([user]) if user in self.pipeline.windows else None
                publisher.changelog(partition, user, snapshot)
                changelog += 1
        for partition, user in self.running.windows.release(result.evicted, keep=lost):  # gone for good
            publisher.changelog(partition, user, None)
            changelog += 1
        try:
            with self.health.waiting_on_broker("the commit of a batch"):
                if exactly_once:
                    publisher.commit(offsets, self.running.consumer.consumer_group_metadata())
                    self.stats.commits += 1
                else:
                    publisher.confirm()
                    self.health.broker_up()  # every record delivered
                    self._commit(offsets)
        except TransactionAborted as exc:
            self.stats.transactions_aborted += 1
            self._aborts_in_a_row += 1
            if self._aborts_in_a_row >= MAX_ABORTS_IN_A_ROW:  # a record that can never be written
                raise KafkaServiceError(f"{self._aborts_in_a_row} transactions in a row aborted, last: {exc}; "
                                        "nothing of them is visible or committed") from exc
            self._rewind()
            return
        self._aborts_in_a_row = 0
        self.stats.count_batch(len(batch.events), result, len(recommendations), len(batch.bad), changelog)
        self._observe(batch, dataclasses.replace(result, recommendations=recommendations))

    def _observe(self, batch: Batch, result: BatchResult) -> None:
        metrics = self.telemetry.metrics
        for bad in batch.bad:
            metrics.bad_messages.labels(reason=bad.error.reason).inc()
        self.dead_letter_rate.observe_batch(batch)
        metrics.dead_lettered.labels(topic=self.kafka.dead_letter_topic).inc(len(batch.bad))
        self.telemetry.after_batch(self.pipeline, result, batch.size, self.kafka.output_topic)

    def _commit(self, offsets: list[TopicPartition]) -> None:  # with what a failed commit left
        done = self.running.committer.commit({tp.partition: tp.offset for tp in offsets}, self.running.fetcher.assigned)
        if done:
            self.stats.commits += 1
            self.health.broker_up()
        elif done is False:
            self.stats.commit_failures += 1

    def _rewind(self) -> None:
        """After an aborted transaction: windows and positions back to the last commit."""
        partitions = sorted(self.running.fetcher.assigned)
        self.running.fetcher.discard(partitions)
        self.stats.dropped_users += self.running.windows.drop(partitions)
        with self.health.restoring():
            self.stats.restored_users += self.running.windows.restore(partitions)
        reset = str(consumer_config(self.settings).get("auto.offset.reset", "earliest"))
        positions = rewind(self.running.consumer, self.kafka.input_topic, partitions, reset, COMMITTED_TIMEOUT_S)
        log.warning("transaction aborted: rewound %s to %s", self.kafka.input_topic, positions)

    def _checkpoint(self) -> None:
        self.pipeline.save(self.settings.state_dir, with_windows=False)
        self.running.windows.prune()
        self.stats.checkpoints += 1
        self.telemetry.metrics.checkpoints.inc()
        self._last_checkpoint = time.monotonic()

    # -- rebalancing (called from inside poll/consume/close, on the main thread) ---------------

    def _mine(self, partitions: list[TopicPartition]) -> list[int]:
        return sorted(tp.partition for tp in partitions if tp.topic == self.kafka.input_topic)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = self._mine(partitions)
        if mine and mine[-1] >= self._partitions:
            raise ConfigError(f"{self.kafka.input_topic} now has more than {self._partitions} partitions, the "
                              f"changelog {self.changelog_topic} has {self._partitions}: grow the changelog to "
                              "match (users keyed to the new partitions start with empty windows)")
        if mine and not self._failed:
            self._runner.finish()  # the pipeline is not thread-safe: no batch while restoring
            with self.health.restoring():
                restored = self.running.windows.restore(mine)
            self.stats.restored_users += restored
            log.info("assigned %s partitions %s (%d windows restored)", self.kafka.input_topic, mine, restored)
        self.running.fetcher.assigned.update(mine)
        self.health.assigned(self.running.fetcher.assigned)
        self.stats.partitions_assigned += len(mine)
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = self._mine(partitions)
        if mine and not self._failed:
            self._runner.finish()  # delivered and committed before the partitions go
        self._forget(mine, lost=False)
        self.stats.partitions_revoked += len(mine)
        log.info("revoked %s partitions %s", self.kafka.input_topic, mine)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = self._mine(partitions)
        if mine and not self._failed:
            self._runner.finish(lost=set(mine))  # the rest of the batch is still ours
        self._forget(mine, lost=True)
        self.stats.partitions_lost += len(mine)
        log.warning("lost %s partitions %s: nothing of theirs committed, their windows dropped",
                    self.kafka.input_topic, mine)
        consumer.incremental_unassign(partitions)

    def _forget(self, partitions: list[int], lost: bool) -> None:
        self.running.fetcher.forget(partitions)
        self.health.assigned(self.running.fetcher.assigned, lost)  # their lag series go
        self.dead_letter_rate.forget(partitions)
        self.stats.dropped_users += self.running.windows.drop(partitions)

    # -- shutdown ----------------------------------------------------------------------------

    def _close(self) -> None:
        started = time.monotonic()
        run = self._run
        try:
            if run is not None:
                run.consumer.close()  # revokes (committing nothing new), leaves the group
                if not self._failed:
                    run.publisher.producer.flush(self.kafka.shutdown_timeout_seconds)
        finally:
            if run is not None:
                run.windows.close()
                if run.items is not None:
                    run.items.close()
            if self.follower is not None:
                self.follower.close()
            self._runner.close()
            flush_repeats(force=True)
        log.info("closed in %.1fs; stats %s", time.monotonic() - started, self.stats.as_dict())
