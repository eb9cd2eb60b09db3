"""Bad messages go to the dead-letter topic and the partition keeps moving; and when a record
cannot be delivered, nothing of its batch is committed."""

from __future__ import annotations

import json

import msgpack
import pytest
from kafkakit import KafkaKit, make_log

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
        assert letter.value == value
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


def test_undeliverable_dead_letter_blocks_the_commit(kit: KafkaKit) -> None:
    """A record the broker refuses (the dead-letter topic takes at most 2 KB) fails the batch:
    the service exits 1 and the batch's offsets stay uncommitted, so it is redone after a fix."""
    topic = kit.create_topic("events", 1)
    dead_letters = kit.create_topic("dlq", 1, {"max.message.bytes": "2048"})
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=dead_letters, max_event_bytes=MAX_EVENT_BYTES)
    config, settings = kit.write_config(values)
    service = kit.start(config)
    good = make_log(n_users=5, events_per_user=(3, 4), seed=2)
    kit.produce_events(topic, good)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    committed = kit.committed(settings.kafka.group, topic)[0]
    huge, _ = BAD["huge"]
    assert huge is not None and len(huge) > 2048
    [(_, offset)] = kit.produce(topic, [(b"bad", huge)])
    assert service.proc.wait(60) == 1, service.log()[-3000:]
    assert "not delivered" in service.log()
    assert kit.committed(settings.kafka.group, topic)[0] == committed == offset


def test_exactly_once_aborts_rewinds_and_then_fails_loudly(kit: KafkaKit) -> None:
    """Under exactly-once the refused record aborts the transaction: the service rewinds (windows
    from the changelog, positions to the committed offsets) and retries; a record that can never be
    written makes it give up after 3 aborts in a row. Nothing of the aborted batches is visible."""
    topic = kit.create_topic("events", 1)
    dead_letters = kit.create_topic("dlq", 1, {"max.message.bytes": "2048"})
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=dead_letters, max_event_bytes=MAX_EVENT_BYTES, exactly_once=True,
                          transactional_id=kit.name("txn"))
    config, settings = kit.write_config(values)
    service = kit.start(config)
    kit.produce_events(topic, make_log(n_users=5, events_per_user=(3, 4), seed=2))
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    committed = kit.committed(settings.kafka.group, topic)[0]
    visible = len(kit.read_all(settings.kafka.output_topic))
    huge, _ = BAD["huge"]
    # The bad record shares its batch with good events of a user whose window must be rewound too.
    kit.produce(topic, [(b"u1", _event("u1", "5")), (b"bad", huge), (b"u1", _event("u1", "6"))])
    assert service.proc.wait(90) == 1, service.log()[-3000:]
    log = service.log()
    assert log.count("transaction aborted: rewound") == 2 and "3 transactions in a row aborted" in log
    assert kit.committed(settings.kafka.group, topic)[0] == committed
    assert len(kit.read_all(settings.kafka.output_topic)) == visible  # read_committed: aborted output unseen
    stats = json.loads(log.splitlines()[-1])["stats"]
    assert stats["transactions_aborted"] == 3 and stats["restored_users"] >= 2 * 5
