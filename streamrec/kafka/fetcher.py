"""Micro-batches from the consumer, with a bounded read-ahead and slow-batch protection.

:meth:`Fetcher.collect` returns up to ``batch.max_size`` messages, closing the batch
``batch.max_wait_ms`` after its first message arrived (a :class:`~streamrec.batching.MicroBatcher`
holds what waits). With ``batch.adaptive`` an
:class:`~streamrec.batching.AdaptiveBatchPolicy` picks each batch's size and deadline from the
arrival rate and the measured batch cost (the caller reports each batch's cost): light traffic
gets batches of one closed at once, and messages already waiting go together, up to
``batch.max_size``. While the pipeline works on a batch,
:meth:`Fetcher.read_ahead` keeps consuming until one more batch is waiting, then stops reading;
if the batch is still running after ``PAUSE_AFTER_S`` it pauses the assignment and keeps calling
``poll()``, which then returns no messages but serves rebalances and keeps the consumer within
``max.poll.interval.ms`` however slow the batch. Memory stays bounded: one batch in flight, at
most one read ahead, plus librdkafka's prefetch queue (``queued.max.messages.kbytes``).

Not pausing on every batch matters: a pause drops librdkafka's prefetched messages and
fetching restarts only about ``fetch.wait.max.ms`` after the resume.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterable
from concurrent.futures import Future, wait
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streamrec.batching import AdaptiveBatchPolicy, MicroBatcher
from streamrec.kafka.batch import Received
from streamrec.kafka.clients import KafkaServiceError
from streamrec.kafka.security import raise_on_auth

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5  # how long a poll waits with nothing to do (bounds the reaction to a stop)
BUSY_POLL_S = 0.01  # how late, at most, the end of a batch is noticed while reading ahead
PAUSE_AFTER_S = 1.0  # a batch running longer than this is slow: pause, and keep polling


class Fetcher:
    """Consumes the input topic for the service; tracks the assignment and unprocessed messages."""

    def __init__(self, consumer: Consumer, topic: str, max_size: int, max_wait_ms: int,
                 stop: threading.Event, policy: AdaptiveBatchPolicy | None = None, group: str | None = None) -> None:
        self.consumer = consumer
        self.topic = topic
        self.group = group  # named when an ACL for it is missing
        self.limit = max_size  # read-ahead bound, and the largest batch
        self.policy = policy
        self.stop = stop
        self.assigned: set[int] = set()
        self.waiting: MicroBatcher[Received] = MicroBatcher(max_size, max_wait_ms)  # the policy may resize it
        self._paused: list[TopicPartition] = []

    @property
    def pending(self) -> list[Received]:
        """Consumed, not yet processed (never committed)."""
        return self.waiting.items

    def collect(self) -> list[Received]:
        """The next micro-batch; [] after an idle poll (so the caller can do housekeeping)."""
        waiting = self.waiting
        if self.policy is not None:  # what waits already goes together; else what the load asks for
            waiting.max_size = min(self.limit, max(self.policy.size, len(waiting)))
            waiting.max_wait = self.policy.wait_ms / 1000
        while not waiting.full() and not self.stop.is_set():
            if waiting.items:
                remaining = waiting.time_left()
                if remaining <= 0:
                    break
                timeout = min(remaining, IDLE_POLL_S)
            else:
                timeout = IDLE_POLL_S
            self.receive(self.consumer.consume(num_messages=waiting.max_size - len(waiting), timeout=timeout))
            if not waiting.items:
                return []
        return waiting.take()

    def receive(self, messages: Iterable[Message]) -> None:
        now_ms = int(time.time() * 1000)
        before = len(self.waiting)
        self._receive(messages, now_ms)
        if self.policy is not None and len(self.waiting) > before:
            self.policy.observe_arrivals(len(self.waiting) - before)

    def observe_batch(self, size: int, seconds: float) -> None:
        """A batch of ``size`` messages took ``seconds`` from start to commit."""
        if self.policy is not None and size:
            self.policy.observe_batch(size, seconds)

    def _receive(self, messages: Iterable[Message], now_ms: int) -> None:
        for message in messages:
            error = message.error()
            if error is not None:
                raise_on_auth(error, f"read topic {message.topic() or self.topic!r}", self.group)
                if error.fatal():
                    raise KafkaServiceError(f"consumer failed: {error}")
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer: %s", error)
                continue
            if message.partition() not in self.assigned:  # fetched before a revoke: not ours now
                continue
            self.waiting.extend((Received(message, now_ms),))

    def read_ahead(self, future: Future[Any], started: float) -> None:
        """One step of waiting for ``future`` (the batch started at ``started``, monotonic); after a
        stop nothing more is read, so a stop waits for this batch only."""
        room = 0 if self.stop.is_set() else self.limit - len(self.waiting)
        if room > 0:
            self.receive(self.consumer.consume(num_messages=room, timeout=BUSY_POLL_S))
            return
        waited = time.monotonic() - started
        if waited < PAUSE_AFTER_S:
            wait([future], timeout=PAUSE_AFTER_S - waited)
            return
        paused = {tp.partition for tp in self._paused}
        unpaused = [TopicPartition(self.topic, p) for p in sorted(self.assigned - paused)]
        if unpaused:
            self.consumer.pause(unpaused)
            self._paused.extend(unpaused)
        message = self.consumer.poll(BUSY_POLL_S)
        if message is not None:
            self.receive([message])

    def resume(self) -> None:
        still_assigned = [tp for tp in self._paused if tp.partition in self.assigned]
        if still_assigned:
            self.consumer.resume(still_assigned)
        self._paused = []

    def discard(self, partitions: Collection[int]) -> None:
        """Drop unprocessed messages of ``partitions``; they are redelivered from the committed offset."""
        self.waiting.keep(lambda received: received.message.partition() not in partitions)

    def forget(self, partitions: Collection[int]) -> None:
        self.discard(partitions)
        self.assigned -= set(partitions)
