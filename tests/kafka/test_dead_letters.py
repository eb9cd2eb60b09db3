"""Bad messages go to the dead-letter topic and the partition keeps moving, however large; JSON
and msgpack events are both read; a partition whose every message is rejected raises an alarm;
and when a record cannot be delivered, nothing of its batch is committed."""

from __future__ import annotations

import json

import msgpack
import pytest
from confluent_kafka import Producer
from kafkakit import KafkaKit, make_log, scrape

from streamrec.events import encode_event

pytestmark = pytest.mark.kafka

MAX_EVENT_BYTES = 1024


def _event(user: str, item: str = "3", action: str = "view", timestamp: object = 1_700_000_000_000) -> bytes:
    return msgpack.packb({"user_id": user, "item_id": item, "action": action, "timestamp": timestamp})


BAD = {  # name -> (value, reason)
    "truncated": (_event("bad1")[:-5], "undecodable"),
    "not_msgpack": (b"\xc1\xc1 definitely not msgpack", "undecodable"),
    "not_a_map": (msgpack.packb([1, 2, 3]), "schema"),
    "wrong_types": (_event("bad2", timestamp="yesterday"), "schema"),
    "missing_field": (msgpack.packb({"user_id": "bad3", "action": "view", "timestamp": 1}), "schema"),
    "huge": (msgpack.packb({"user_id": "bad4", "item_id": "3", "action": "view", "timestamp": 1,
                            "attributes": {"blob": "x" * 4 * MAX_EVENT_BYTES}}), "oversized"),
    "unknown_action": (_event("bad5", action="teleport"), "unknown_action"),
    "tombstone": (None, "undecodable"),
}


def test_bad_messages_are_dead_lettered(kit: KafkaKit) -> None:
    good = make_log(n_users=30, events_per_user=(3, 6), seed=9)
    topic = kit.create_topic("events", 3)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"), max_event_bytes=MAX_EVENT_BYTES)
    config, settings = kit.write_config(values)
    service = kit.start(config)

    # Interleave: every few good events, one bad one (keyed like an event, with a header to keep).
    records: list[tuple[bytes | None, bytes | None]] = []
    headers: list[list[tuple[str, str | bytes | None]] | None] = []
    bad_at: dict[int, str] = {}
    bad = list(BAD.items())
    for n, event in enumerate(good):
        records.append((event.user_id.encode(), encode_event(event)))
        headers.append(None)
        if n % 7 == 3 and bad:
            name, (value, _) = bad.pop()
            bad_at[len(records)] = name
            records.append((f"key-{name}".encode(), value))
            headers.append([("trace-id", name.encode()), ("reason", b"spoofed")])
    assert not bad, "every kind of bad message must be sent"
    where = kit.produce(topic, records, headers)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    assert service.alive()  # bad input never stops the service

    dead = {(r.key or b"").decode().removeprefix("key-"): r for r in kit.read_all(settings.kafka.dead_letter_topic)}
    assert set(dead) == set(BAD)
    for index, name in bad_at.items():
        letter, (value, reason) = dead[name], BAD[name]
        partition, offset = where[index]
        if reason == "oversized":  # cut to kafka.max_event_bytes, its size in a header
            assert value is not None and letter.value == value[:MAX_EVENT_BYTES]
            assert letter.headers["original.size"] == str(len(value)).encode()
        else:
            assert letter.value == value and "original.size" not in letter.headers
        assert letter.headers["reason"] == reason.encode(), name
        assert letter.headers["error"]
        assert letter.headers["source.topic"] == topic.encode()
        assert letter.headers["source.partition"] == str(partition).encode()
        assert letter.headers["source.offset"] == str(offset).encode()
        assert letter.headers["trace-id"] == name.encode()  # original headers kept, ours win
    users = {rec.user_id for _, rec in kit.recommendations(settings.kafka.output_topic)}
    assert users == {e.user_id for e in good}

    assert service.stop() == 0
    stats = json.loads(service.log().splitlines()[-1])["stats"]
    assert stats["dead_lettered"] == len(BAD) and stats["events_processed"] == len(good)
    assert stats["bad_messages"] == {reason: sum(r == reason for _, r in BAD.values()) for _, reason in BAD.values()}


def test_json_input(kit: KafkaKit) -> None:
    """JSON events (what kcat or any non-Python producer writes) and msgpack events on one topic are
    both read by default; recommendations come out as JSON objects."""
    events = make_log(n_users=20, events_per_user=(3, 6), seed=4)
    topic = kit.create_topic("events", 2)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"), progress_interval_seconds=1)
    config, settings = kit.write_config(values)
    service = kit.start(config, log_level=None)  # the default level: quiet but for the progress line
    kit.produce(topic, [(e.user_id.encode(), encode_event(e, "json" if n % 2 else "msgpack"))
                        for n, e in enumerate(events)])
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    kit.wait_for(lambda: f"progress: {len(events):,} events consumed" in service.log(), "a progress line", 30,
                 [service])
    assert service.stop() == 0, service.log()[-3000:]
    log = service.log()
    assert " INFO streamrec.kafka.service" not in log  # other INFO lines stay hidden
    stats = json.loads(log.splitlines()[-1])["stats"]
    assert stats["events_processed"] == len(events) and stats["dead_lettered"] == 0
    records = kit.read_all(settings.kafka.output_topic)
    assert records and all(json.loads(r.value or b"")["user_id"] for r in records)
    assert {r.recommendation().user_id for r in records} == {e.user_id for e in events}


def test_a_partition_of_rejects_raises_the_alarm(kit: KafkaKit) -> None:
    """A producer that writes something else entirely: every message of its partition is dead-lettered,
    the service says so in its log and on streamrec_dead_letter_ratio, and keeps serving the others."""
    topic = kit.create_topic("events", 1)
    port = kit.free_port()
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"))
    config, settings = kit.write_config(values)
    service = kit.start(config, "--metrics-address", f"127.0.0.1:{port}")
    kit.produce(topic, [(f"k{n}".encode(), f"user=u{n};item=3;action=view".encode()) for n in range(60)])
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    kit.wait_for(lambda: "every one of the last" in service.log(), "the dead-letter alarm", 30, [service])
    assert scrape(port)[("streamrec_dead_letter_ratio", (("partition", "0"), ("topic", topic)))] == 1.0
    kit.produce_events(topic, make_log(n_users=10, events_per_user=(20, 25), seed=5))
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    kit.wait_for(lambda: "has valid events again" in service.log(), "the alarm to clear", 30, [service])
    assert service.stop() == 0


def test_oversized_message(kit: KafkaKit) -> None:
    """A message larger than the producer's message.max.bytes (the input topic takes 4 MB) is
    dead-lettered cut to kafka.max_event_bytes with its size in a header, and the stream moves on;
    nothing is published twice."""
    topic = kit.create_topic("events", 1, {"max.message.bytes": str(4 * 1024 * 1024)})
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"))
    config, settings = kit.write_config(values)
    service = kit.start(config)
    before, after = make_log(n_users=5, events_per_user=(3, 4), seed=2), make_log(n_users=5, seed=3)
    kit.produce_events(topic, before)
    huge = msgpack.packb({"user_id": "big", "item_id": "3", "action": "view", "timestamp": 1,
                          "attributes": {"blob": "x" * 1_500_000}})
    producer = Producer({"bootstrap.servers": kit.bootstrap, "message.max.bytes": 5 * 1024 * 1024})
    producer.produce(topic, huge, key=b"big")
    assert producer.flush(30) == 0
    kit.produce_events(topic, after)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    assert service.stop() == 0, service.log()[-3000:]
    [letter] = kit.read_all(settings.kafka.dead_letter_topic)
    assert letter.headers["reason"] == b"oversized" and letter.headers["original.size"] == str(len(huge)).encode()
    assert letter.value == huge[:settings.kafka.max_event_bytes]
    recs = kit.recommendations(settings.kafka.output_topic)
    sources = [(rec.source["partition"], rec.source["offset"]) for _, rec in recs]
    assert len(sources) == len(set(sources))  # no batch published twice
    assert {rec.user_id for _, rec in recs} == {e.user_id for e in before + after}


def test_a_dead_letter_topic_too_small_is_a_config_error(kit: KafkaKit) -> None:
    """kafka.max_event_bytes must fit the dead-letter topic: checked at start, not at the first bad message."""
    topic = kit.create_topic("events", 1)
    dead_letters = kit.create_topic("dlq", 1, {"max.message.bytes": "20000"})
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=dead_letters)
    config, _ = kit.write_config(values)
    service = kit.start(config)
    assert service.proc.wait(60) == 2, service.log()[-3000:]
    assert "kafka.max_event_bytes=65536 does not fit a dead letter" in service.log()
    assert "max.message.bytes is 20000" in service.log()


def _window_too_large_for(changelog_bytes: int) -> bytes:
    """A valid event whose window is larger than the changelog topic takes."""
    return msgpack.packb({"user_id": "u1", "item_id": "5", "action": "view", "timestamp": 1_700_000_000_000,
                          "attributes": {"note": "y" * changelog_bytes}})


def test_undeliverable_record_blocks_the_commit(kit: KafkaKit) -> None:
    """A record the broker refuses (the changelog topic takes at most 4 KB; one user's window is
    larger) fails the batch: the service exits 1 and the batch's offsets stay uncommitted, so it is
    redone after a fix."""
    topic = kit.create_topic("events", 1)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"))
    kit.create_topic(f"{values['kafka']['group']}-windows-changelog", 1,
                     {"cleanup.policy": "compact", "max.message.bytes": "4096"}, exact=True)
    config, settings = kit.write_config(values)
    service = kit.start(config)
    good = make_log(n_users=5, events_per_user=(3, 4), seed=2)
    kit.produce_events(topic, good)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    committed = kit.committed(settings.kafka.group, topic)[0]
    [(_, offset)] = kit.produce(topic, [(b"u1", _window_too_large_for(4096))])
    assert service.proc.wait(60) == 1, service.log()[-3000:]
    assert "not delivered" in service.log()
    assert kit.committed(settings.kafka.group, topic)[0] == committed == offset


def test_exactly_once_aborts_rewinds_and_then_fails_loudly(kit: KafkaKit) -> None:
    """Under exactly-once the refused record aborts the transaction: the service rewinds (windows
    from the changelog, positions to the committed offsets) and retries; a record that can never be
    written makes it give up after 3 aborts in a row. Nothing of the aborted batches is visible."""
    topic = kit.create_topic("events", 1)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"), exactly_once=True, transactional_id=kit.name("txn"))
    kit.create_topic(f"{values['kafka']['group']}-windows-changelog", 1,
                     {"cleanup.policy": "compact", "max.message.bytes": "4096"}, exact=True)
    config, settings = kit.write_config(values)
    service = kit.start(config)
    kit.produce_events(topic, make_log(n_users=5, events_per_user=(3, 4), seed=2))
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    committed = kit.committed(settings.kafka.group, topic)[0]
    visible = len(kit.read_all(settings.kafka.output_topic))
    # The refused window shares its batch with good events of another user, whose window is rewound too.
    kit.produce(topic, [(b"u2", _event("u2", "5")), (b"u1", _window_too_large_for(4096)), (b"u2", _event("u2", "6"))])
    assert service.proc.wait(90) == 1, service.log()[-3000:]
    log = service.log()
    assert log.count("transaction aborted: rewound") == 2 and "3 transactions in a row aborted" in log
    assert kit.committed(settings.kafka.group, topic)[0] == committed
    assert len(kit.read_all(settings.kafka.output_topic)) == visible  # read_committed: aborted output unseen
    stats = json.loads(log.splitlines()[-1])["stats"]
    assert stats["transactions_aborted"] == 3 and stats["restored_users"] >= 2 * 5
