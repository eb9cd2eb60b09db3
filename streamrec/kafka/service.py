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
  committed offsets and carries on. The head (model) is not rolled back: learning is
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
* **Slow batches.** :meth:`Pipeline.process` runs in a worker thread; meanwhile the main
  thread pauses the assignment and keeps calling ``poll()``, which serves the group protocol
  and never returns a message, so a slow batch cannot exceed ``max.poll.interval.ms``.
* **Bad messages** go to the dead-letter topic (see :mod:`streamrec.kafka.messages`); the
  partition keeps moving and the bad message's offset is committed with its batch.
* **Shutdown.** :meth:`KafkaService.stop` (the CLI calls it on SIGTERM/SIGINT) lets the
  in-flight batch finish, processes what was already consumed, commits, checkpoints the head
  and closes the consumer (revoking, hence leaving the group at once).
* **Checkpoints.** The head is saved to ``state_dir`` every ``kafka.checkpoint_interval_seconds``
  and at shutdown, and loaded at start. Windows are not in the checkpoint: the changelog owns them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from streamrec.config import Settings
from streamrec.errors import ConfigError
from streamrec.kafka.batch import Batch, Received
from streamrec.kafka.changelog import ChangelogReader, PartitionUsers, changelog_topic, merge_snapshots
from streamrec.kafka.clients import (
    KafkaServiceError,
    TopicSpec,
    admin_config,
    consumer_config,
    default_transactional_id,
    ensure_topic,
    partition_count,
    producer_config,
    topic_config,
)
from streamrec.kafka.items import ItemsTopic
from streamrec.kafka.publisher import Publisher, TransactionAborted
from streamrec.kafka.stats import ServiceStats

if TYPE_CHECKING:
    from streamrec.pipeline import BatchResult, Pipeline

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5
BUSY_POLL_S = 0.01  # how late, at most, the end of a batch is noticed while reading ahead
PAUSE_AFTER_S = 1.0  # a batch running longer than this is "slow": pause, keep polling
COMMITTED_TIMEOUT_S = 30.0


@dataclass
class InFlight:
    batch: Batch
    future: Future[BatchResult]
    started: float


class KafkaService:
    """Runs ``pipeline`` on the input topic until :meth:`stop` (or ``max_runtime_s``).

    >>> service = KafkaService(load_settings(), pipeline)  # doctest: +SKIP
    >>> stats = service.run()  # blocks; another thread or a signal handler calls service.stop()
    """

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.kafka = settings.kafka
        self.stats = ServiceStats()
        self.changelog_topic = changelog_topic(settings)
        self._stop = threading.Event()
        self._failed = False
        self._owners = PartitionUsers()
        self._assigned: set[int] = set()
        self._pending: list[Received] = []
        self._pending_since = 0.0
        self._paused: list[TopicPartition] = []
        self._in_flight: InFlight | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pipeline")
        self._last_checkpoint = time.monotonic()
        self._consumer: Consumer | None = None
        self._publisher: Publisher | None = None
        self._reader: ChangelogReader | None = None
        self._items: ItemsTopic | None = None

    def stop(self) -> None:
        """Ask for a graceful stop; safe from signal handlers and other threads."""
        self._stop.set()

    @property
    def consumer(self) -> Consumer:
        assert self._consumer is not None, "the service is not running"
        return self._consumer

    @property
    def publisher(self) -> Publisher:
        assert self._publisher is not None, "the service is not running"
        return self._publisher

    # -- the loop ----------------------------------------------------------------------------

    def run(self, max_runtime_s: float | None = None) -> ServiceStats:
        deadline = None if max_runtime_s is None else time.monotonic() + max_runtime_s
        try:
            self._open()
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    log.info("max runtime of %.0fs reached, stopping", max_runtime_s)
                    break
                self._between_batches()
                received = self._collect()
                if received:
                    self._process(received)
            while self._pending:  # already consumed: process rather than leave for redelivery
                batch, self._pending = self._pending[:self.settings.batch.max_size], \
                    self._pending[self.settings.batch.max_size:]
                self._process(batch)
            self._checkpoint()
        except BaseException:
            self._failed = True
            raise
        finally:
            self._close()
        return self.stats

    def _open(self) -> None:
        kafka = self.kafka
        partitions = self._ensure_topics()
        log.info("input %s has %d partitions; changelog %s", kafka.input_topic, partitions, self.changelog_topic)
        transactional_id = default_transactional_id(self.settings) if kafka.exactly_once else None
        self._publisher = Publisher(Producer(producer_config(self.settings, transactional_id)), kafka.output_topic,
                                    kafka.dead_letter_topic, self.changelog_topic, kafka.wire_format)
        if transactional_id is not None:
            self.publisher.init_transactions()  # also fences and aborts a previous incarnation's transaction
        self._reader = ChangelogReader(self.settings, self.changelog_topic)
        if kafka.items_topic:
            self._items = ItemsTopic(self.settings, kafka.items_topic)
            items = self._items.bootstrap()
            self.pipeline.add_items(items)
            self.stats.items_loaded += len(items)
            log.info("loaded %d items from %s", len(items), kafka.items_topic)
        if self.pipeline.load(self.settings.state_dir):
            log.info("loaded head v%d from %s", self.pipeline.head.version, self.settings.state_dir)
        stale = list(self.pipeline.windows.users())
        if stale:  # windows belong to partitions; the changelog restores the ones we get
            log.warning("dropping %d windows loaded from %s: the changelog owns windows", len(stale),
                        self.settings.state_dir)
            self.pipeline.drop_users(stale)
        self._consumer = Consumer(consumer_config(self.settings))
        self.consumer.subscribe([kafka.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)

    def _ensure_topics(self) -> int:
        kafka = self.kafka
        admin = AdminClient(admin_config(self.settings))
        partitions = partition_count(admin, kafka.input_topic)
        if partitions is None:
            raise ConfigError(f"input topic {kafka.input_topic!r} does not exist on {kafka.bootstrap_servers}; "
                              "create it first (its partition count fixes the changelog's)")
        replicas = kafka.topic_replication_factor
        for topic in (kafka.output_topic, kafka.dead_letter_topic):
            ensure_topic(admin, TopicSpec(topic, partitions, {}), replicas)
        found = ensure_topic(admin, TopicSpec(self.changelog_topic, partitions, {"cleanup.policy": "compact"}),
                             replicas)
        if found != partitions:
            raise ConfigError(f"changelog {self.changelog_topic!r} has {found} partitions but the input topic has "
                              f"{partitions}; they must match (user windows follow input partitions)")
        policy = topic_config(admin, self.changelog_topic, "cleanup.policy") or ""
        if "compact" not in policy:
            raise ConfigError(f"changelog {self.changelog_topic!r} has cleanup.policy={policy!r}; it must be "
                              "compact, or windows are lost when old segments are deleted")
        return partitions

    def _between_batches(self) -> None:
        if self._items is not None:
            items = self._items.poll()
            if items:
                self.pipeline.add_items(items)
                self.stats.items_loaded += len(items)
            self.stats.bad_items = self._items.bad_records
        if time.monotonic() - self._last_checkpoint >= self.kafka.checkpoint_interval_seconds:
            self._checkpoint()

    def _collect(self) -> list[Received]:
        """Up to ``batch.max_size`` messages, closing ``batch.max_wait_ms`` after the first arrived."""
        max_size, max_wait = self.settings.batch.max_size, self.settings.batch.max_wait_ms / 1000
        while len(self._pending) < max_size and not self._stop.is_set():
            if self._pending:
                remaining = self._pending_since + max_wait - time.monotonic()
                if remaining <= 0:
                    break
                timeout = min(remaining, IDLE_POLL_S)
            else:
                timeout = IDLE_POLL_S
            messages = self.consumer.consume(num_messages=max_size - len(self._pending), timeout=timeout)
            self._receive(messages)
            if not self._pending:
                return []
        batch, self._pending = self._pending[:max_size], self._pending[max_size:]
        self._pending_since = time.monotonic()
        return batch

    def _receive(self, messages: list[Message]) -> None:
        now_ms = int(time.time() * 1000)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaServiceError(f"consumer failed: {error}")
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer: %s", error)
                continue
            if message.partition() not in self._assigned:  # fetched before a revoke; not ours now
                continue
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.append(Received(message, now_ms))

    # -- one batch ---------------------------------------------------------------------------

    def _process(self, received: list[Received]) -> None:
        kafka = self.kafka
        batch = Batch.assemble(received, self.pipeline.vocab, kafka.wire_format, kafka.max_event_bytes)
        self.stats.events_consumed += batch.size
        for partition, users in batch.users.items():
            for user in users:
                self._owners.add(partition, user)
        future = self._executor.submit(self.pipeline.process, batch.events)
        self._in_flight = InFlight(batch, future, time.monotonic())
        while self._in_flight is not None and not future.done():
            self._read_ahead(self._in_flight)
        self._finish_in_flight()

    def _read_ahead(self, flight: InFlight) -> None:
        """While the pipeline works: read at most one batch ahead, and keep serving the group.

        With a batch read ahead, the main thread just waits for the worker; if the batch is still
        running after ``PAUSE_AFTER_S``, the assignment is paused and ``poll()`` (which then
        returns no messages) is called until it ends, serving rebalances and staying within
        ``max.poll.interval.ms`` however slow the batch. Not pausing every batch matters: a pause
        drops librdkafka's prefetched messages, and fetching restarts ~0.5 s after the resume.
        """
        wait([flight.future])  # MUTANT
        room = self.settings.batch.max_size - len(self._pending)
        if room > 0:
            self._receive(self.consumer.consume(num_messages=room, timeout=BUSY_POLL_S))
            return
        waited = time.monotonic() - flight.started
        if waited < PAUSE_AFTER_S:
            wait([flight.future], timeout=PAUSE_AFTER_S - waited)
            return
        paused = {tp.partition for tp in self._paused}
        unpaused = [TopicPartition(self.kafka.input_topic, p) for p in sorted(self._assigned - paused)]
        if unpaused:
            self.consumer.pause(unpaused)
            self._paused.extend(unpaused)
        message = self.consumer.poll(BUSY_POLL_S)
        if message is not None:
            self._receive([message])

    def _finish_in_flight(self, lost: set[int] | None = None) -> None:
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return
        result = flight.future.result()
        seconds = time.monotonic() - flight.started
        self.stats.longest_batch_seconds = max(self.stats.longest_batch_seconds, seconds)
        self._publish(flight.batch.without(lost or set()), result)
        self._resume()

    def _resume(self) -> None:
        still_assigned = [tp for tp in self._paused if tp.partition in self._assigned]
        if still_assigned:
            self.consumer.resume(still_assigned)
        self._paused = []

    def _publish(self, batch: Batch, result: BatchResult) -> None:
        publisher, exactly_once = self.publisher, self.kafka.exactly_once
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
                publisher.commit(offsets, self.consumer.consumer_group_metadata())
                self.stats.commits += 1
            else:
                publisher.confirm()
                self._commit(offsets)
        except TransactionAborted:
            self.stats.transactions_aborted += 1
            self._rewind()
            return
        self.stats.batches += 1
        self.stats.events_processed += len(batch.events)
        self.stats.duplicates += result.duplicates
        self.stats.too_late += result.too_late
        self.stats.recommendations_produced += len(recommendations)
        self.stats.dead_lettered += len(batch.bad)
        self.stats.changelog_records += changelog

    def _commit(self, offsets: list[TopicPartition]) -> None:
        if not offsets:
            return
        try:
            committed = self.consumer.commit(offsets=offsets, asynchronous=False) or []
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
        partitions = sorted(self._assigned)
        topic = self.kafka.input_topic
        committed = self.consumer.committed([TopicPartition(topic, p) for p in partitions],
                                            timeout=COMMITTED_TIMEOUT_S)
        self._pending = [r for r in self._pending if r.message.partition() not in self._assigned]
        self._drop(partitions)
        self._restore(partitions)
        reset = str(consumer_config(self.settings).get("auto.offset.reset", "earliest"))
        fallback = OFFSET_BEGINNING if reset in ("earliest", "smallest", "beginning") else OFFSET_END
        for tp in committed:
            self.consumer.seek(TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else fallback))
        log.warning("transaction aborted: rewound %s to %s", topic, [(tp.partition, tp.offset) for tp in committed])

    # -- state -------------------------------------------------------------------------------

    def _restore(self, partitions: list[int]) -> int:
        assert self._reader is not None
        restored = 0
        for partition, users in self._reader.read(partitions).items():
            if users:
                restored += self.pipeline.restore_users(merge_snapshots(users.values()))
            for user in users:
                self._owners.add(partition, user)
                # Index every item of a restored window now: the pipeline sizes its item matrix
                # before ranking, and an item first indexed while ranking would fall outside it.
                for event in self.pipeline.windows.window(user):
                    self.pipeline.catalog.index_of(event.item_id)
        self.stats.restored_users += restored
        return restored

    def _drop(self, partitions: list[int]) -> None:
        users: set[str] = set()
        for partition in partitions:
            users |= self._owners.pop(partition)
        self.pipeline.drop_users(users)
        self.stats.dropped_users += len(users)

    def _checkpoint(self) -> None:
        self.pipeline.save(self.settings.state_dir, with_windows=False)
        self._owners.prune(lambda user: user in self.pipeline.windows)
        self.stats.checkpoints += 1
        self._last_checkpoint = time.monotonic()

    # -- rebalancing (called from inside poll/consume/close, on the main thread) ---------------

    def _mine(self, partitions: list[TopicPartition]) -> list[int]:
        return sorted(tp.partition for tp in partitions if tp.topic == self.kafka.input_topic)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        mine = self._mine(partitions)
        if mine and not self._failed:
            self._finish_in_flight()  # the pipeline is not thread-safe: no batch while restoring
            restored = self._restore(mine)
            log.info("assigned %s partitions %s (%d windows restored)", self.kafka.input_topic, mine, restored)
        self._assigned.update(mine)
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
        gone = set(partitions)
        self._pending = [r for r in self._pending if r.message.partition() not in gone]
        self._assigned -= gone
        self._drop(partitions)

    # -- shutdown ----------------------------------------------------------------------------

    def _close(self) -> None:
        started = time.monotonic()
        try:
            if self._consumer is not None:
                self._consumer.close()  # revokes (committing nothing new), leaves the group
            if self._publisher is not None and not self._failed:
                self._publisher.producer.flush(self.kafka.shutdown_timeout_seconds)
        finally:
            for closable in (self._reader, self._items):
                if closable is not None:
                    closable.close()
            self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("closed in %.1fs; stats %s", time.monotonic() - started, self.stats.as_dict())
