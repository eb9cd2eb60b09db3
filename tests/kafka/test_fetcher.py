"""The fetcher's micro-batches against a real broker: fixed size/deadline vs the adaptive policy."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafkakit import KafkaKit

from streamrec.batching import AdaptiveBatchPolicy
from streamrec.kafka.fetcher import Fetcher

pytestmark = pytest.mark.kafka

MAX_SIZE, MAX_WAIT_MS = 64, 2000


@pytest.fixture()
def topic(kit: KafkaKit) -> str:
    return kit.create_topic("fetch", 1)


@contextmanager
def _fetcher(kit: KafkaKit, topic: str, policy: AdaptiveBatchPolicy | None) -> Iterator[Fetcher]:
    consumer = Consumer({"bootstrap.servers": kit.bootstrap, "group.id": kit.name("g"),
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0)])
    fetcher = Fetcher(consumer, topic, MAX_SIZE, MAX_WAIT_MS, threading.Event(), policy)
    fetcher.assigned = {0}
    try:
        yield fetcher
    finally:
        consumer.close()


def _collect(fetcher: Fetcher, timeout: float = 30) -> tuple[int, float]:
    """Size of the next non-empty batch and the seconds collect() took to return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        batch = fetcher.collect()
        if batch:
            return len(batch), time.monotonic() - started
    raise AssertionError("no batch")


def _records(n: int, start: int = 0) -> list[tuple[bytes | None, bytes | None]]:
    return [(b"u", str(start + i).encode()) for i in range(n)]


def test_fixed_batches_wait_for_the_deadline(kit: KafkaKit, topic: str) -> None:
    kit.produce(topic, _records(1))
    with _fetcher(kit, topic, None) as fetcher:
        size, seconds = _collect(fetcher)
    assert size == 1 and seconds >= MAX_WAIT_MS / 1000 * 0.9  # one event waited out the deadline


def test_adaptive_batches_follow_the_load(kit: KafkaKit, topic: str) -> None:
    policy = AdaptiveBatchPolicy(max_size=MAX_SIZE, max_wait_ms=MAX_WAIT_MS)
    with _fetcher(kit, topic, policy) as fetcher:
        # Light traffic: one event, closed at once instead of waiting for company.
        kit.produce(topic, _records(1))
        size, seconds = _collect(fetcher)
        assert size == 1 and seconds < MAX_WAIT_MS / 1000 / 2
        fetcher.observe_batch(size, 0.05)
        for n in range(2, 6):  # a trickle, one event every 300 ms, each batch costing 50 ms
            time.sleep(0.3)
            kit.produce(topic, _records(1, n))
            size, seconds = _collect(fetcher)
            fetcher.observe_batch(size, 0.05)
            assert size == 1 and seconds < MAX_WAIT_MS / 1000 / 2
        # A backlog: what is already waiting goes in batches as large as allowed.
        kit.produce(topic, _records(500, 100))
        sizes = []
        while sum(sizes) < 500:
            size, _ = _collect(fetcher)
            fetcher.observe_batch(size, 0.05 + 0.01 * size)
            sizes.append(size)
        assert sum(sizes) == 500 and max(sizes) == MAX_SIZE and sizes.count(MAX_SIZE) >= 5
