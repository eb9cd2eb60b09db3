"""``streamrec tail``: read recommendations from a topic and print them for people (or as JSON).

Reads ``read_committed`` (so, under exactly-once, only committed batches), outside any consumer
group, from every partition: from the beginning or from the end. Values may be msgpack or JSON.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import msgpack
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition
from rich.console import Console
from rich.text import Text

from streamrec.config import Settings
from streamrec.errors import RecommendationError
from streamrec.events import detect_format
from streamrec.kafka.clients import KafkaServiceError, consumer_config
from streamrec.kafka.topics import ADMIN_TIMEOUT_S
from streamrec.recommendations import Recommendation


def decode_recommendation(value: bytes) -> Recommendation:
    """A recommendation from msgpack or JSON; raises RecommendationError if it is neither."""
    try:
        data = json.loads(value) if detect_format(value) == "json" else msgpack.unpackb(value, raw=False)
        return Recommendation.from_dict(data)
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise RecommendationError(f"not a recommendation: {exc}") from exc


def render(rec: Recommendation, top: int = 5) -> Text:
    """Readable lines: who, when, model version, then the top items with their reasons."""
    when = datetime.fromtimestamp(rec.event_time / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    lag = (rec.produced_at - rec.source["timestamp"]) if "timestamp" in rec.source else None
    text = Text()
    text.append(rec.user_id, style="bold")
    text.append(f"  model v{rec.model_version}  event {when}", style="dim")
    if lag is not None:
        text.append(f"  {lag} ms after produce", style="dim")
    if rec.source:
        text.append(f"  {rec.source.get('topic')}[{rec.source.get('partition')}]@{rec.source.get('offset')}",
                    style="dim")
    for rank, item in enumerate(rec.items[:top], 1):
        text.append(f"\n  {rank}. ")
        text.append(item.title or item.item_id, style="cyan")
        text.append(f"  {item.score:.2f}", style="dim")
        if item.reason:
            text.append(f"  - {item.reason}", style="italic")
    return text


def follow(settings: Settings, topic: str, from_beginning: bool = False,
           idle_timeout_s: float | None = None) -> Iterator[bytes]:
    """Values of ``topic`` as they arrive; stops after ``idle_timeout_s`` without messages."""
    config = consumer_config(settings, f"streamrec-tail-{uuid.uuid4().hex[:8]}", in_group=False)
    config["isolation.level"] = "read_committed"
    consumer = Consumer(config)
    try:
        metadata = consumer.list_topics(topic, timeout=ADMIN_TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaServiceError(f"topic {topic!r} does not exist or is unreadable")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(metadata.partitions)])
        last = time.monotonic()
        while idle_timeout_s is None or time.monotonic() - last < idle_timeout_s:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                value = message.value()
                if message.error() is None and value is not None:
                    last = time.monotonic()
                    yield value
    finally:
        consumer.close()


def tail(settings: Settings, topic: str, max_count: int | None = None, from_beginning: bool = False,
         idle_timeout_s: float | None = None, as_json: bool = False, console: Console | None = None) -> int:
    """Print recommendations; returns how many were printed."""
    console = console or Console()
    printed = 0
    if max_count is not None and max_count <= 0:
        return 0
    for value in follow(settings, topic, from_beginning, idle_timeout_s):
        try:
            rec = decode_recommendation(value)
        except RecommendationError as exc:
            console.print(f"[dim]skipped a record: {exc}[/]")
            continue
        if as_json:
            console.print_json(rec.to_json()) if console.is_terminal else print(rec.to_json(), flush=True)
        else:
            console.print(render(rec))
        printed += 1
        if max_count is not None and printed >= max_count:
            break
    return printed
