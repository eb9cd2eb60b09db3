"""The Kafka service: consume events, run the pipeline, publish recommendations.

Guarantees (the README quotes this docstring):

* **At-least-once (default).** ``enable.auto.commit=false``; after each micro-batch the service
  commits, synchronously, the offset after the last message of the batch in each partition,
  and only once every record the batch produced has a successful delivery report: first the
  recommendations and dead letters (flushed and checked), then the changelog records
  (flushed and checked), then the commit. A delivery failure raises and nothing of the batch
  is committed; the process exits non-zero and a restart redoes the batch. Explicit commits
  (not auto-commit with ``store_offsets``) because the commit must happen at the batch
  boundary, also inside the revoke callback, and must be known to have succeeded before the
  partition's users are dropped. Recommendations are flushed before changelog records, so a
  window that survives a crash always has its recommendation delivered.
* **Exactly-once (``kafka.exactly_once``).** One transaction per batch holds the
  recommendations, dead letters, changelog records and the consumed offsets
  (``send_offsets_to_transaction`` with the consumer's group metadata, which fences zombies).
  The consumer reads ``read_committed``. If the transaction must abort, the service aborts,
  drops and restores the windows of its partitions from the changelog, seeks back to the
  committed offsets and carries on; after 3 aborts in a row (a record that can never be
  written) it fails loudly instead of looping. The head (model) is not rolled back: learning is
  best-effort and may have seen the aborted batch once.
* **Order.** Messages are processed in offset order per partition and recommendations are
  keyed by ``user_id``, so each user's recommendations appear in event order.
* **Duplicates.** An event without ``event_id`` gets ``topic:partition:offset``; a window drops
  an ``event_id`` it has seen, so a redelivered event already in a restored window is not
  counted twice (and produces no new recommendation).
* **State follows partitions** (see :mod:`streamrec.kafka.changelog`). Rebalancing is
  cooperative (``cooperative-sticky``, incremental assign/unassign): only moved partitions
  change hands, so the other users' windows stay in memory. On assign, windows are restored
  from the changelog before the partitions are consumed. On revoke, the in-flight batch is
  finished, delivered and committed, then the partitions' users are dropped. On lost, nothing
  of the lost partitions is written or committed (another member owns them) and their users
  are dropped.
* **Slow batches.** :meth:`Pipeline.process` runs in a worker thread while the main thread
  reads at most one batch ahead; if the batch is still running after a second, the main thread
  pauses the assignment and keeps calling ``poll()``, which serves the group protocol and
  returns no messages, so a slow batch cannot exceed ``max.poll.interval.ms`` and memory stays
  bounded (see :mod:`streamrec.kafka.fetcher`).
* **Bad messages** go to the dead-letter topic (see :mod:`streamrec.kafka.messages`); the
  partition keeps moving and the bad message's offset is committed with its batch.
* **Shutdown.** :meth:`KafkaService.stop` (the CLI calls it on SIGTERM/SIGINT) lets the
  in-flight batch finish, processes what was already consumed, commits, checkpoints the head
  and closes the consumer (revoking, hence leaving the group at once).
* **Checkpoints.** The head is saved to ``state_dir`` every ``kafka.checkpoint_interval_seconds``
  and at shutdown, and loaded at start. Windows are not in the checkpoint: the changelog owns them.
* **Limits.** At-least-once: a commit that fails (e.g. during a rebalance) is logged and counted;
  the batch is redelivered and its events are recognised as duplicates. A kill leaves at most
  one batch uncommitted, so at most ``batch.max_size`` recommendations repeat per crash. A member
  that has lost its partitions but not yet noticed (a "zombie") can still write changelog records
  for them; only exactly-once fences it. Events must be keyed by ``user_id``: a user whose events
  arrive on two partitions has one window fed by both, dropped when either partition goes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streamrec.batching import AdaptiveBatchPolicy
from streamrec.config import Settings
from streamrec.errors import ConfigError
from streamrec.kafka.batch import Batch, Received
from streamrec.kafka.changelog import ChangelogReader, PartitionWindows, changelog_topic
from streamrec.kafka.clients import (
    KafkaServiceError,
    committed_offsets,
    consumer_config,
    default_transactional_id,
    producer_config,
)
from streamrec.kafka.fetcher import Fetcher
from streamrec.kafka.items import ItemsTopic
from streamrec.kafka.publisher import Publisher, TransactionAborted
from streamrec.kafka.stats import ServiceStats
from streamrec.kafka.topics import ensure_service_topics
from streamrec.monitoring import Telemetry

if TYPE_CHECKING:
    from streamrec.pipeline import BatchResult, Pipeline

log = logging.getLogger(__name__)

COMMITTED_TIMEOUT_S = 30.0
MAX_ABORTS_IN_A_ROW = 3
STATISTICS_INTERVAL_MS = 5000  # librdkafka statistics, for the consumer-lag gauge
READY_LAG_BATCHES = 10  # /readyz: every assigned partition within this many batches of its end


@dataclass
class InFlight:
    batch: Batch
    future: Future[BatchResult]
    started: float  # monotonic


@dataclass
class _Running:
    """The clients of one run, made by :meth:`KafkaService._open`."""

    consumer: Consumer
    fetcher: Fetcher
    publisher: Publisher
    windows: PartitionWindows
    items: ItemsTopic | None


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
        self.lag: dict[int, int] = {}  # partition -> consumer_lag from librdkafka statistics
        self.changelog_topic = changelog_topic(settings)
        self._stop = threading.Event()
        self._failed = False
        self._in_flight: InFlight | None = None
        self._aborts_in_a_row = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pipeline")
        self._last_checkpoint = time.monotonic()
        self._run: _Running | None = None
        self._partitions = 0  # of the input topic, hence of the changelog

    def stop(self) -> None:
        """Ask for a graceful stop; safe from signal handlers and other threads."""
        self._stop.set()

    @property
    def running(self) -> _Running:
        assert self._run is not None, "the service is not running"
        return self._run

    # -- the loop ----------------------------------------------------------------------------

    def run(self, max_runtime_s: float | None = None) -> ServiceStats:
        deadline = None if max_runtime_s is None else time.monotonic() + max_runtime_s
        try:
            self._open()
            fetcher = self.running.fetcher
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    log.info("max runtime of %.0fs reached, stopping", max_runtime_s)
                    break
                self._between_batches()
                received = fetcher.collect()
                if received:
                    self._process(received)
            while fetcher.pending:  # already consumed: process rather than leave for redelivery
                self._process(fetcher.take())
            self._checkpoint()
        except BaseException:
            self._failed = True
            raise
        finally:
            self._close()
        return self.stats

    def _open(self) -> None:
        kafka, settings = self.kafka, self.settings
        partitions = self._partitions = ensure_service_topics(settings, self.changelog_topic)
        log.info("input %s has %d partitions; changelog %s", kafka.input_topic, partitions, self.changelog_topic)
        transactional_id = default_transactional_id(settings) if kafka.exactly_once else None
        publisher = Publisher(Producer(producer_config(settings, transactional_id, keyed=True)), kafka.output_topic,
                              kafka.dead_letter_topic, self.changelog_topic, kafka.wire_format)
        if transactional_id is not None:
            publisher.init_transactions()  # also fences and aborts a previous incarnation's transaction
        windows = PartitionWindows(self.pipeline, ChangelogReader(settings, self.changelog_topic))
        items = None
        if kafka.items_topic:
            items = ItemsTopic(settings, kafka.items_topic)
            loaded = items.bootstrap()
            self.pipeline.add_items(loaded)
            self.stats.items_loaded += len(loaded)
            log.info("loaded %d items from %s", len(loaded), kafka.items_topic)
        if self.pipeline.load(settings.state_dir):
            log.info("loaded head v%d from %s", self.pipeline.head.version, settings.state_dir)
        stale = list(self.pipeline.windows.users())
        if stale:  # windows belong to partitions; the changelog restores the ones we get
            log.warning("dropping %d windows loaded from %s: the changelog owns windows", len(stale),
                        settings.state_dir)
            self.pipeline.drop_users(stale)
        config = consumer_config(settings)
        config.setdefault("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        config["stats_cb"] = self._on_statistics
        consumer = Consumer(config)
        batch = settings.batch
        policy = (AdaptiveBatchPolicy(max_size=batch.max_size, max_wait_ms=batch.max_wait_ms)
                  if batch.adaptive else None)
        fetcher = Fetcher(consumer, kafka.input_topic, batch.max_size, batch.max_wait_ms, self._stop, policy)
        self._run = _Running(consumer, fetcher, publisher, windows, items)
        consumer.subscribe([kafka.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_lost)

    def _between_batches(self) -> None:
        items = self.running.items
        if items is not None:
            new = items.poll()
            if new:
                self.pipeline.add_items(new)
                self.stats.items_loaded += len(new)
            self.stats.bad_items = items.bad_records
        if time.monotonic() - self._last_checkpoint >= self.kafka.checkpoint_interval_seconds:
            self._checkpoint()

    # -- one batch ---------------------------------------------------------------------------

    def _process(self, received: list[Received]) -> None:
        kafka = self.kafka
        batch = Batch.assemble(received, self.pipeline.vocab, kafka.wire_format, kafka.max_event_bytes)
        self.stats.events_consumed += batch.size
        consumed = self.telemetry.metrics.events_consumed
        for partition, count in Counter(int(r.message.partition() or 0) for r in received).items():
            consumed.labels(topic=kafka.input_topic, partition=str(partition)).inc(count)
        self.telemetry.before_batch(batch.events)  # prequential: score before the pipeline learns
        for partition, users in batch.users.items():
            for user in users:
                self.running.windows.owners.add(partition, user)
        future = self._executor.submit(self.pipeline.process, batch.events)
        flight = self._in_flight = InFlight(batch, future, time.monotonic())
        while self._in_flight is not None and not future.done():  # a rebalance callback may finish it
            self.running.fetcher.read_ahead(future, flight.started)
        self._finish_in_flight()

    def _finish_in_flight(self, lost: set[int] | None = None) -> None:
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return
        result = flight.future.result()
        self.stats.longest_batch_seconds = max(self.stats.longest_batch_seconds, time.monotonic() - flight.started)
        self._publish(flight.batch.without(lost or set()), result)
        self.running.fetcher.observe_batch(flight.batch.size, time.monotonic() - flight.started)
        self.running.fetcher.resume()

    def _publish(self, batch: Batch, result: BatchResult) -> None:
        publisher, exactly_once = self.running.publisher, self.kafka.exactly_once
        recommendations = [dataclasses.replace(rec, source=batch.sources[rec.user_id])
                           for rec in result.recommendations if rec.user_id in batch.sources]
        offsets = [TopicPartition(self.kafka.input_topic, p, o) for p, o in sorted(batch.next_offsets.items())]
        if exactly_once:
            publisher.begin()
        for rec in recommendations:
            publisher.recommendation(rec)
        for bad in batch.bad:
            message = bad.message
            publisher.dead_letter(message.key(), message.value(), message.headers(), bad.error,
                                  message.topic() or "", message.partition() or 0, message.offset() or 0)
            self.stats.bad_messages[bad.error.reason] += 1
        if not exactly_once:
            publisher.confirm()  # recommendations before windows: a persisted window implies its output
        changelog = 0
        for partition, users in batch.users.items():
            for user in users:
                snapshot = self.pipeline.windows.snapshot([user]) if user in self.pipeline.windows else None
                publisher.changelog(partition, user, snapshot)
                changelog += 1
        try:
            if exactly_once:
                publisher.commit(offsets, self.running.consumer.consumer_group_metadata())
                self.stats.commits += 1
            else:
                publisher.confirm()
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
        self.stats.batches += 1
        self.stats.events_processed += len(batch.events)
        self.stats.duplicates += result.duplicates
        self.stats.too_late += result.too_late
        self.stats.recommendations_produced += len(recommendations)
        self.stats.dead_lettered += len(batch.bad)
        self.stats.changelog_records += changelog
        self._observe(batch, dataclasses.replace(result, recommendations=recommendations))

    def _observe(self, batch: Batch, result: BatchResult) -> None:
        metrics = self.telemetry.metrics
        for bad in batch.bad:
            metrics.bad_messages.labels(reason=bad.error.reason).inc()
        metrics.dead_lettered.labels(topic=self.kafka.dead_letter_topic).inc(len(batch.bad))
        self.telemetry.after_batch(self.pipeline, result, batch.size, self.kafka.output_topic)

    def _on_statistics(self, stats_json: str) -> None:
        """librdkafka statistics (every ``statistics.interval.ms``): per-partition consumer lag."""
        try:
            partitions = json.loads(stats_json)["topics"][self.kafka.input_topic]["partitions"]
        except (KeyError, ValueError):
            return
        gauge = self.telemetry.metrics.consumer_lag
        for key, partition in partitions.items():
            lag = int(partition.get("consumer_lag", -1))
            if key == "-1" or lag < 0:  # the internal UA partition, or no position yet
                continue
            self.lag[int(key)] = lag
            gauge.labels(topic=self.kafka.input_topic, partition=key).set(lag)

    def ready(self) -> bool:
        """Assigned and caught up: every assigned partition within a few batches of its end."""
        if self._run is None or not self.running.fetcher.assigned:
            ready = False
        else:
            limit = READY_LAG_BATCHES * self.settings.batch.max_size
            ready = all(self.lag.get(p, 0) <= limit for p in self.running.fetcher.assigned)
        self.telemetry.metrics.ready.set(1 if ready else 0)
        return ready

    def _commit(self, offsets: list[TopicPartition]) -> None:
        if not offsets:
            return
        try:
            committed = self.running.consumer.commit(offsets=offsets, asynchronous=False) or []
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.fatal():
                raise KafkaServiceError(f"commit failed fatally: {error}") from exc
            self.stats.commit_failures += 1
            log.warning("commit failed (%s); the batch will be redelivered and its events deduplicated", error)
            return
        failed = [tp for tp in committed if tp.error is not None]
        if failed:
            self.stats.commit_failures += 1
            log.warning("commit failed for %s; those events will be redelivered and deduplicated", failed)
        else:
            self.stats.commits += 1

    def _rewind(self) -> None:
        """After an aborted transaction: windows and positions back to the last commit."""
        consumer, fetcher, topic = self.running.consumer, self.running.fetcher, self.kafka.input_topic
        partitions = sorted(fetcher.assigned)
        committed = committed_offsets(consumer, [TopicPartition(topic, p) for p in partitions], COMMITTED_TIMEOUT_S)
        fetcher.discard(partitions)
        self.stats.dropped_users += self.running.windows.drop(partitions)
        self.stats.restored_users += self.running.windows.restore(partitions)
        reset = str(consumer_config(self.settings).get("auto.offset.reset", "earliest"))
        fallback = OFFSET_BEGINNING if reset in ("earliest", "smallest", "beginning") else OFFSET_END
        for tp in committed:
            consumer.seek(TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else fallback))
        log.warning("transaction aborted: rewound %s to %s", topic, [(tp.partition, tp.offset) for tp in committed])

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
            self._finish_in_flight()  # the pipeline is not thread-safe: no batch while restoring
            restored = self.running.windows.restore(mine)
            self.stats.restored_users += restored
            log.info("assigned %s partitions %s (%d windows restored)", self.kafka.input_topic, mine, restored)
        self.running.fetcher.assigned.update(mine)
        self.stats.partitions_assigned += len(mine)
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = self._mine(partitions)
        if mine and not self._failed:
            self._finish_in_flight()  # delivered and committed before the partitions go
        self._forget(mine)
        self.stats.partitions_revoked += len(mine)
        log.info("revoked %s partitions %s", self.kafka.input_topic, mine)
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = self._mine(partitions)
        if mine and not self._failed:
            self._finish_in_flight(lost=set(mine))  # the rest of the batch is still ours
        self._forget(mine)
        self.stats.partitions_lost += len(mine)
        log.warning("lost %s partitions %s: nothing of theirs committed, their windows dropped",
                    self.kafka.input_topic, mine)
        consumer.incremental_unassign(partitions)

    def _forget(self, partitions: list[int]) -> None:
        for partition in partitions:
            if self.lag.pop(partition, None) is not None:
                self.telemetry.metrics.consumer_lag.remove(self.kafka.input_topic, str(partition))
        self.running.fetcher.forget(partitions)
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
            self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("closed in %.1fs; stats %s", time.monotonic() - started, self.stats.as_dict())
