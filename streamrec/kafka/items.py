"""Item text for the catalogue, from a file or from a compacted items topic.

The items topic is read from the beginning of every partition by a consumer outside the group
(every instance needs every item). :meth:`ItemsTopic.bootstrap` reads up to the end before the
service consumes its first event, so recommendations start with full item text;
:meth:`ItemsTopic.poll` then picks up new and changed items between batches. Records are JSON
or msgpack maps, ``{"item_id", "title", "category", "attributes"}``, keyed by ``item_id``;
tombstones are ignored (the catalogue never forgets an item), unreadable records are logged
and counted.

>>> parse_item(b'{"item_id": 7, "title": "Teapot", "category": "Kitchen"}').display()
'Teapot (Kitchen)'
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgpack
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from streamrec.catalog import Item, item_from_mapping
from streamrec.config import Settings
from streamrec.errors import CatalogError
from streamrec.events import detect_format
from streamrec.kafka.clients import KafkaServiceError, consumer_config
from streamrec.kafka.security import raise_on_auth
from streamrec.kafka.topics import ADMIN_TIMEOUT_S

if TYPE_CHECKING:
    from streamrec.pipeline import Pipeline

log = logging.getLogger(__name__)

BOOTSTRAP_TIMEOUT_S = 300.0


def parse_item(value: bytes) -> Item:
    """An item from a JSON or msgpack record; raises :class:`CatalogError`."""
    try:
        if detect_format(value) == "json":
            record = json.loads(value)
        else:
            record = msgpack.unpackb(value, raw=False, strict_map_key=False)
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:  # TypeError: a list as a key
        raise CatalogError(f"item record is neither JSON nor msgpack: {type(exc).__name__}") from exc
    if not isinstance(record, dict):
        raise CatalogError(f"item record is not a map: {record!r:.80}")
    return item_from_mapping(record)


def item_record(item: Item, wire_format: str) -> bytes:
    """How ``streamrec produce`` writes an item to the items topic."""
    if wire_format == "json":
        return json.dumps(item.to_dict(), ensure_ascii=False).encode()
    return msgpack.packb(item.to_dict(), use_bin_type=True)


class ItemsTopic:
    """Follows a compacted items topic from its beginning."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.bad_records = 0
        config = consumer_config(settings, f"{settings.kafka.group}-items-{uuid.uuid4().hex[:8]}", in_group=False)
        config["enable.partition.eof"] = True
        self._consumer = Consumer(config)
        self.group = str(config["group.id"])  # named when an ACL for it is missing
        metadata = self._consumer.list_topics(topic, timeout=ADMIN_TIMEOUT_S).topics.get(topic)
        if metadata is not None:
            raise_on_auth(metadata.error, f"describe the items topic {topic!r}")
        if metadata is None or metadata.error is not None:
            raise KafkaServiceError(f"items topic {topic!r} does not exist or is unreadable: "
                                    f"{metadata.error if metadata else 'no metadata'}")
        self.partitions = sorted(metadata.partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self.partitions])

    def bootstrap(self, timeout_s: float = BOOTSTRAP_TIMEOUT_S) -> list[Item]:
        """Every item up to the current end of every partition."""
        items: list[Item] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(self.partitions):
            if time.monotonic() > deadline:
                raise KafkaServiceError(f"reading items topic {self.topic!r} took longer than {timeout_s:.0f}s")
            for message in self._consumer.consume(num_messages=1000, timeout=0.5):
                if self._is_eof(message):
                    at_end.add(message.partition() or 0)
                else:
                    items.extend(self._items([message]))
        return items

    def feed(self, pipeline: Pipeline, first: bool = False) -> int:
        """Add the items that arrived (``first``: every item so far) to ``pipeline``; how many."""
        items = self.bootstrap() if first else self.poll()
        if items or first:
            pipeline.add_items(items)
            log.info("%s %d items from %s", "loaded" if first else "added", len(items), self.topic)
        return len(items)

    def poll(self) -> list[Item]:
        """Items that arrived since the last call (never blocks)."""
        return list(self._items(self._consumer.consume(num_messages=1000, timeout=0)))

    def _items(self, messages: Iterable[Message]) -> Iterable[Item]:
        for message in messages:
            if message.error() is not None:
                raise_on_auth(message.error(), f"read the items topic {self.topic!r}", self.group)
                if not self._is_eof(message):
                    log.warning("items topic %s: %s", self.topic, message.error())
                continue
            value = message.value()
            if value is None:
                continue
            try:
                yield parse_item(value)
            except CatalogError as exc:
                self.bad_records += 1
                log.warning("items topic %s[%s]@%s: %s", self.topic, message.partition(), message.offset(), exc)

    @staticmethod
    def _is_eof(message: Message) -> bool:
        error = message.error()
        return error is not None and error.code() == KafkaError._PARTITION_EOF

    def close(self) -> None:
        self._consumer.close()
