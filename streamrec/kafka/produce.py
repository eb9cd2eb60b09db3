"""``streamrec produce``: publish a recorded log to a topic, in timestamp order, keyed by user.

Events go out as msgpack (``wire_format="json"``: JSON objects; the service reads both), keyed by
``user_id`` with the Java client's partitioner (``murmur2_random``), so every event of a user lands
in one partition in time order. A missing topic is created with ``partitions`` (default
``kafka.topic_partitions``), not left to the broker's auto-creation (one partition: a second
instance of the service would sit idle). An optional catalogue is published first to a compacted items topic, keyed by
``item_id``. ``rate`` caps events per second (a steady pace, not bursts). The producer is
idempotent and flushed at the end; the report counts delivery failures.

``streamrec forget`` sends its requests here too (:func:`request_forget`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from tqdm import tqdm

from streamrec.catalog import Item, read_items
from streamrec.config import Settings
from streamrec.events import ActionVocabulary, Event, WireFormat, encode_event
from streamrec.forget import forget_headers
from streamrec.kafka.clients import KafkaServiceError, admin_config, producer_config
from streamrec.kafka.items import item_record
from streamrec.kafka.topics import TopicSpec, ensure_topic, partition_count

LOG_DOMAINS = {"movielens": "video", "amazon": "ecommerce"}
FLUSH_TIMEOUT_S = 120.0


@dataclass
class ProduceReport:
    events: int = 0
    items: int = 0
    rejected: int = 0  # log records that failed validation (not sent)
    failed: int = 0  # records with a failed delivery report
    first_error: str | None = None
    seconds: float = 0.0


class RateLimiter:
    """Paces calls to ``rate`` per second on average (None: no limit).

    >>> limiter = RateLimiter(None); limiter.wait(); limiter.count
    1
    """

    def __init__(self, rate: float | None, clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
        self.rate = rate
        self.count = 0
        self._clock, self._sleep = clock, sleep
        self._start = clock()

    def wait(self) -> None:
        if self.rate is not None:
            ahead = self._start + self.count / self.rate - self._clock()
            if ahead > 0.001:
                self._sleep(ahead)
        self.count += 1


class _Deliveries:
    def __init__(self) -> None:
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            self.first_error = self.first_error or f"{message.topic()}: {error.str()}"


def _send(producer: Producer, topic: str, value: bytes, key: bytes, deliveries: _Deliveries, **kwargs: Any) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key, on_delivery=deliveries, **kwargs)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.05)


def load_events(settings: Settings, log_path: str | Path, log_format: str = "auto",
                column_map: Mapping[str, str] | None = None,
                limit: int | None = None) -> tuple[list[Event], list[Item], int]:
    """Validated events sorted by time, the log's own items, and how many records were rejected."""
    from streamrec.sources import detect_format, read_log

    resolved = detect_format(log_path) if log_format == "auto" else log_format
    domain = LOG_DOMAINS.get(resolved, settings.domain)
    recorded = read_log(log_path, ActionVocabulary.for_domain(domain, settings.actions), resolved,  # type: ignore[arg-type]
                        column_map, limit)
    return recorded.events, recorded.items, len(recorded.rejected)


def produce_events(settings: Settings, events: Sequence[Event], topic: str, *, items: Sequence[Item] = (),
                   items_topic: str | None = None, rate: float | None = None, partitions: int | None = None,
                   wire_format: WireFormat = "msgpack", progress: bool = True) -> ProduceReport:
    """Publish ``items`` (if ``items_topic``) then ``events``; returns the report after a flush."""
    report = ProduceReport()
    started = time.perf_counter()
    admin = AdminClient(admin_config(settings))
    replicas = settings.kafka.topic_replication_factor
    ensure_topic(admin, TopicSpec(topic, partitions or settings.kafka.topic_partitions, {}), replicas)
    producer = Producer(producer_config(settings, keyed=True))
    deliveries = _Deliveries()
    if items_topic and items:
        ensure_topic(admin, TopicSpec(items_topic, 1, {"cleanup.policy": "compact"}), replicas)
        for item in items:
            _send(producer, items_topic, item_record(item, wire_format), item.item_id.encode(), deliveries)
        report.items = len(items)
    limiter = RateLimiter(rate)
    with tqdm(total=len(events), unit="ev", desc=f"produce {topic}", disable=not progress,
              dynamic_ncols=True) as bar:
        for n, event in enumerate(events, 1):
            limiter.wait()
            _send(producer, topic, encode_event(event, wire_format), event.user_id.encode(), deliveries)
            if n % 1000 == 0:
                bar.update(1000)
        bar.update(len(events) % 1000)
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    report.events = len(events)
    report.failed = deliveries.failed + remaining
    report.first_error = deliveries.first_error
    report.seconds = time.perf_counter() - started
    return report


def request_forget(settings: Settings, user_ids: Sequence[str], topic: str | None = None) -> int:
    """Send a forget request (:mod:`streamrec.forget`) for each user to every partition of the input
    topic, and wait for delivery; returns the number of partitions."""
    topic = topic or settings.kafka.input_topic
    partitions = partition_count(AdminClient(admin_config(settings)), topic)
    if partitions is None:
        raise KafkaServiceError(f"input topic {topic!r} does not exist on {settings.kafka.bootstrap_servers}")
    producer = Producer(producer_config(settings, keyed=True))
    deliveries = _Deliveries()
    for user in user_ids:
        for partition in range(partitions):
            _send(producer, topic, b"", user.encode(), deliveries, partition=partition, headers=forget_headers())
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    if deliveries.failed or remaining:
        raise KafkaServiceError(f"{deliveries.failed + remaining} forget requests not delivered: "
                                f"{deliveries.first_error or 'flush timed out'}")
    return partitions


def produce_log(settings: Settings, log_path: str | Path, topic: str, *, log_format: str = "auto",
                column_map: Mapping[str, str] | None = None, limit: int | None = None,
                catalog_path: str | Path | None = None, items_topic: str | None = None,
                rate: float | None = None, partitions: int | None = None, wire_format: WireFormat = "msgpack",
                progress: bool = True) -> ProduceReport:
    """Everything ``streamrec produce`` does."""
    events, log_items, rejected = load_events(settings, log_path, log_format, column_map, limit)
    items = list(log_items)
    if catalog_path is not None:
        items.extend(read_items(catalog_path))
    report = produce_events(settings, events, topic, items=items, items_topic=items_topic, rate=rate,
                            partitions=partitions, wire_format=wire_format, progress=progress)
    report.rejected = rejected
    return report
