"""A micro-batch of consumed messages: events in order, bad messages aside, offsets, users and sources per partition.

The broker test assembles messages really consumed; the others build ``confluent_kafka.Message``
objects (its constructor is meant for tests) to pin each rule on its own.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import msgpack
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from kafkakit import KafkaKit

from streamrec.errors import DecodeError, SchemaError, UnknownActionError
from streamrec.events import ActionVocabulary, Event, encode_event
from streamrec.kafka.batch import Batch, Received

VOCAB = ActionVocabulary.for_domain("ecommerce")


def message(user: str | None, partition: int, offset: int, *, value: bytes | None = None, timestamp: int = 0,
            **fields: Any) -> Message:
    if value is None and user is not None:
        value = msgpack.packb({"user_id": user, "item_id": "7", "action": "view", "timestamp": 1000 + offset,
                               **fields})
    return Message(topic="events", partition=partition, offset=offset, key=user.encode() if user else None,
                   value=value, timestamp=(1, timestamp or 5000 + offset))


def assemble(*messages: Message, consumed_at: int = 99, max_bytes: int = 1024) -> Batch:
    return Batch.assemble([Received(m, consumed_at) for m in messages], VOCAB, "auto", max_bytes)


def test_events_keep_the_consumed_order_and_each_users_newest_source() -> None:
    batch = assemble(message("a", 0, 10), message("b", 1, 3), message("a", 0, 11, action="cart"),
                     message("c", 1, 4, event_id="mine"))
    assert [(e.user_id, e.action) for e in batch.events] == [("a", "view"), ("b", "view"), ("a", "cart"), ("c", "view")]
    assert [e.event_id for e in batch.events] == ["events:0:10", "events:1:3", "events:0:11", "mine"]
    assert batch.sources["a"] == {"topic": "events", "partition": 0, "offset": 11, "timestamp": 5011,
                                  "consumed_at": 99}
    assert batch.users == {0: {"a"}, 1: {"b", "c"}} and batch.good == {0: 2, 1: 2}
    assert batch.next_offsets == {0: 12, 1: 5} and batch.size == 4 and batch.bad == []


def test_bad_messages_are_set_aside_with_their_error_and_still_advance_the_offsets() -> None:
    tombstone = message(None, 0, 20)
    garbage = message("x", 0, 21, value=b"\xc1\xc1")
    teleport = message("y", 1, 8, action="teleport")
    schema = message("z", 1, 9, value=json.dumps({"user_id": "z", "item_id": "1", "action": "view",
                                                  "timestamp": "soon"}).encode())
    batch = assemble(message("a", 0, 19), tombstone, garbage, teleport, schema)
    assert [(bad.message.offset(), type(bad.error)) for bad in batch.bad] == [
        (20, DecodeError), (21, DecodeError), (8, UnknownActionError), (9, SchemaError)]
    assert batch.bad[0].message is tombstone  # the message itself, for its dead letter
    assert [e.user_id for e in batch.events] == ["a"] and set(batch.sources) == {"a"}
    assert batch.next_offsets == {0: 22, 1: 10}  # past the bad ones: they are dead-lettered, not retried
    assert batch.good == {0: 1} and batch.users == {0: {"a"}} and batch.size == 5


def test_an_oversized_message_is_bad_before_it_is_decoded() -> None:
    batch = assemble(message("a", 0, 1, attributes={"blob": "x" * 600}), max_bytes=512)
    assert batch.events == [] and batch.bad[0].error.reason == "oversized"


def test_without_lost_partitions_nothing_of_theirs_is_left() -> None:
    batch = assemble(message("a", 0, 10), message("b", 1, 3), message(None, 0, 11), message("c", 2, 0),
                     message(None, 1, 4))
    kept = batch.without({0, 2})
    assert [e.user_id for e in kept.events] == ["b"]
    assert kept.users == {1: {"b"}} and set(kept.sources) == {"b"} and kept.good == {1: 1}
    assert kept.next_offsets == {1: 5} and [bad.message.partition() for bad in kept.bad] == [1]
    assert kept.size == batch.size  # the batch's size is what was consumed, lost or not
    assert batch.without(()) is batch and batch.without(set()) is batch
    assert batch.users == {0: {"a"}, 1: {"b"}, 2: {"c"}}  # the original is left as it was


def test_a_user_in_a_lost_and_a_kept_partition_keeps_only_the_kept_events_and_source() -> None:
    # a re-keyed user: their newest event came from the partition that was lost
    batch = assemble(message("a", 1, 4), message("a", 0, 7))
    kept = batch.without({0})
    assert [e.event_id for e in kept.events] == ["events:1:4"]
    assert kept.sources["a"]["partition"] == 1 and kept.sources["a"]["offset"] == 4
    assert kept.users == {1: {"a"}}


@pytest.mark.kafka
def test_assembled_from_messages_consumed_from_the_broker(kit: KafkaKit) -> None:
    topic = kit.create_topic("batch", 2)
    events = [Event(f"u{n % 12}", str(n), "view", 1_700_000_000_000 + n) for n in range(36)]
    where = kit.produce(topic, [(e.user_id.encode(), encode_event(e)) for e in events] + [(b"u0", b"not an event")])
    consumer = Consumer({"bootstrap.servers": kit.bootstrap, "group.id": f"batch-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    received: list[Received] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in (0, 1)])
        deadline = time.monotonic() + 30
        while len(received) < len(where):
            assert time.monotonic() < deadline, f"consumed {len(received)} of {len(where)}"
            received += [Received(m, 1234) for m in consumer.consume(100, 0.5) if m.error() is None]
    finally:
        consumer.close()
    batch = Batch.assemble(received, VOCAB, "msgpack", 1024)

    assert len(batch.events) == 36 and len(batch.bad) == 1 and batch.size == 37
    assert batch.bad[0].message.value() == b"not an event" and batch.bad[0].message.key() == b"u0"
    partition_of = {e.user_id: p for e, (p, _) in zip(events, where, strict=False)}
    assert set(partition_of.values()) == {0, 1}  # twelve users: both partitions hold some
    assert batch.next_offsets == kit.end_offsets(topic)
    assert batch.users == {p: {u for u, q in partition_of.items() if q == p} for p in set(partition_of.values())}
    for user, source in batch.sources.items():
        index = max(i for i, e in enumerate(events) if e.user_id == user)  # the user's newest event
        assert (source["topic"], source["partition"], source["offset"]) == (topic, *where[index])
        assert source["consumed_at"] == 1234 and source["timestamp"] > 1_600_000_000_000  # the broker's time
    for partition in (0, 1):  # each partition's events in offset order
        offsets = [int(str(e.event_id).rsplit(":", 1)[1]) for e in batch.events if partition_of[e.user_id] == partition]
        assert offsets == sorted(offsets)


def forget_request(user: str | None, partition: int, offset: int) -> Message:
    return Message(topic="events", partition=partition, offset=offset, key=user.encode() if user else None,
                   value=b"", headers=[("streamrec.action", b"forget")], timestamp=(1, 5000 + offset))


def test_a_forget_request_drops_the_users_earlier_events_and_keeps_later_ones() -> None:
    batch = assemble(message("a", 0, 1), message("b", 0, 2), message("a", 0, 3, action="cart"),
                     forget_request("a", 0, 4), message("a", 0, 5, item_id="9"), forget_request("b", 1, 6))
    assert [(e.user_id, e.item_id) for e in batch.events] == [("a", "9")]  # b's one event was before its request
    assert [o["offset"] for o in batch.origins] == [5]
    assert batch.forget == [(0, "a"), (1, "b")]
    assert batch.users == {0: {"a"}} and batch.sources["a"]["offset"] == 5 and "b" not in batch.sources
    assert batch.next_offsets == {0: 6, 1: 7} and not batch.bad  # requests are committed like events
    assert batch.without([1]).forget == [(0, "a")]


def test_a_forget_request_without_a_user_key_is_a_dead_letter() -> None:
    batch = assemble(message("a", 0, 1), forget_request(None, 0, 2))
    assert [e.user_id for e in batch.events] == ["a"] and not batch.forget
    error = batch.bad[0].error
    assert isinstance(error, DecodeError) and "forget request needs the user id" in str(error)
