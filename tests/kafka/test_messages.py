"""Messages -> events or dead letters; batch bookkeeping; changelog helpers (no broker needed)."""

from __future__ import annotations

import doctest
import importlib
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest

import streamrec.kafka
from streamrec.errors import CheckpointError, DecodeError, SchemaError, UnknownActionError
from streamrec.events import ActionVocabulary, Event
from streamrec.kafka.batch import Batch, Received
from streamrec.kafka.changelog import PartitionUsers, merge_snapshots
from streamrec.kafka.messages import OversizedEventError, dead_letter_headers, event_from_message
from streamrec.kafka.produce import RateLimiter
from streamrec.windows import WindowStore

VOCAB = ActionVocabulary.for_domain("ecommerce")


@dataclass
class FakeMessage:
    """Only the accessors the batch code reads; Message itself cannot be built in Python."""

    _value: bytes | None
    _partition: int = 0
    _offset: int = 0
    _topic: str = "events"
    _headers: list[tuple[str, bytes]] = field(default_factory=list)

    def value(self) -> bytes | None: return self._value
    def key(self) -> bytes | None: return None
    def topic(self) -> str: return self._topic
    def partition(self) -> int: return self._partition
    def offset(self) -> int: return self._offset
    def headers(self) -> list[tuple[str, bytes]]: return self._headers
    def timestamp(self) -> tuple[int, int]: return (1, 1_000 + self._offset)


def _payload(**fields: Any) -> bytes:
    base = {"user_id": "u1", "item_id": "7", "action": "view", "timestamp": 5}
    return msgpack.packb({**base, **fields})


@pytest.mark.parametrize(("value", "error"), [
    (None, DecodeError), (b"\xc1", DecodeError), (_payload(timestamp="x"), SchemaError),
    (_payload(action="teleport"), UnknownActionError), (_payload(attributes={"x": "y" * 2000}), OversizedEventError),
])
def test_bad_messages_raise_the_error_whose_reason_is_dead_lettered(value: bytes | None, error: type) -> None:
    with pytest.raises(error):
        event_from_message(FakeMessage(value), VOCAB, "msgpack", max_bytes=1024)


def test_event_id_defaults_to_the_message_position_and_keeps_its_own() -> None:
    assert event_from_message(FakeMessage(_payload(), 2, 9), VOCAB, "msgpack", 1024).event_id == "events:2:9"
    assert event_from_message(FakeMessage(_payload(event_id="e1")), VOCAB, "msgpack", 1024).event_id == "e1"


def test_dead_letter_headers_keep_the_original_ones_but_not_spoofed_ones() -> None:
    headers = dict(dead_letter_headers([("trace", b"t"), ("reason", b"spoofed")], OversizedEventError("too big"),
                                       "events", 3, 42))
    assert headers == {"trace": b"t", "reason": b"oversized", "error": b"too big", "source.topic": b"events",
                       "source.partition": b"3", "source.offset": b"42"}


def test_batch_tracks_offsets_users_and_sources_and_drops_lost_partitions() -> None:
    messages = [FakeMessage(_payload(user_id="a"), 0, 10), FakeMessage(b"\xc1", 0, 11),
                FakeMessage(_payload(user_id="b"), 1, 4), FakeMessage(_payload(user_id="a", timestamp=6), 0, 12)]
    batch = Batch.assemble([Received(m, 99) for m in messages], VOCAB, "msgpack", 1024)  # type: ignore[arg-type]
    assert [e.user_id for e in batch.events] == ["a", "b", "a"] and len(batch.bad) == 1
    assert batch.next_offsets == {0: 13, 1: 5} and batch.users == {0: {"a"}, 1: {"b"}}
    assert batch.sources["a"] == {"topic": "events", "partition": 0, "offset": 12, "timestamp": 1012,
                                  "consumed_at": 99}
    kept = batch.without({0})
    assert kept.next_offsets == {1: 5} and set(kept.sources) == {"b"} and not kept.bad


def test_partition_users_follow_a_rekeyed_user_and_prune_evicted_ones() -> None:
    owners = PartitionUsers()
    owners.add(0, "a")
    owners.add(0, "b")
    owners.add(1, "a")
    assert owners.users(0) == {"b"} and owners.partition_of("a") == 1
    assert owners.prune(lambda user: user != "b") == 1 and owners.pop(0) == set()


def test_merged_snapshots_restore_every_user_and_reject_foreign_records() -> None:
    store = WindowStore()
    for n, user in enumerate(["a", "b", "a"]):
        store.add(Event(user, str(n), "view", n, event_id=f"e{n}"))
    restored = WindowStore()
    restored.restore(merge_snapshots([store.snapshot(["a"]), store.snapshot(["b"])]))
    assert restored.window("a") == store.window("a") and restored.window("b") == store.window("b")
    with pytest.raises(CheckpointError):
        merge_snapshots([msgpack.packb({"version": 99, "users": {}})])


def test_rate_limiter_paces_without_bursts() -> None:
    now = [0.0]
    limiter = RateLimiter(10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(21):
        limiter.wait()
    assert now[0] == pytest.approx(2.0)


def test_public_names() -> None:
    assert streamrec.kafka.__all__ == ["KafkaService", "KafkaServiceError", "ServiceStats"]


@pytest.mark.parametrize("module", ["batch", "changelog", "clients", "commands", "fetcher", "items", "messages",
                                    "produce", "publisher", "service", "stats", "tail", "topics"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"streamrec.kafka.{module}"))
    assert result.failed == 0
