"""The publisher against the broker: records where they belong, proof of delivery, transactions all or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import msgpack
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafkakit import KafkaKit

from streamrec.config import Settings, load_settings
from streamrec.kafka.clients import KafkaServiceError, producer_config
from streamrec.kafka.messages import DeadLetter
from streamrec.kafka.publisher import Publisher
from streamrec.recommendations import Recommendation, RecommendedItem

pytestmark = pytest.mark.kafka


def rec(user: str, version: int = 1) -> Recommendation:
    return Recommendation(user, [RecommendedItem("7", 0.5, "because you viewed Teapot (Kitchen)", "Kettle (Kitchen)")],
                          "Recommended for you: Kettle (Kitchen)", version, 1_700_000_000_000, 1_700_000_000_500,
                          {"topic": "events", "partition": 0, "offset": version})


@pytest.fixture
def settings(kit: KafkaKit) -> Settings:
    return load_settings(kafka={"bootstrap_servers": kit.bootstrap})


@pytest.fixture
def topics(kit: KafkaKit) -> dict[str, str]:
    return {"output": kit.create_topic("recs", 2), "dead_letters": kit.create_topic("dlq", 1),
            "changelog": kit.create_topic("changelog", 2, {"cleanup.policy": "compact"})}


def publisher(producer: Producer, topics: dict[str, str], output_format: str = "json") -> Publisher:
    return Publisher(producer, topics["output"], topics["dead_letters"], topics["changelog"], output_format,
                     confirm_timeout_s=30)


def test_each_kind_of_record_lands_in_its_topic_and_is_confirmed(kit: KafkaKit, settings: Settings,
                                                                topics: dict[str, str]) -> None:
    published = publisher(Producer(producer_config(settings)), topics)
    for user in ("a", "b", "c"):
        published.recommendation(rec(user))
    published.dead_letter(DeadLetter(b"u9", b"\xc1garbage", [("trace", b"t1"), ("reason", b"undecodable")]))
    published.changelog(1, "a", b"window of a")
    published.changelog(0, "b", None)  # b's window is gone: a tombstone
    published.confirm()

    recs = kit.read_all(topics["output"])
    assert sorted((r.key, r.recommendation()) for r in recs) == [(u.encode(), rec(u)) for u in "abc"]
    assert all(r.value is not None and r.value.startswith(b"{") for r in recs)  # JSON by default
    [letter] = kit.read_all(topics["dead_letters"])
    assert (letter.key, letter.value, letter.headers) == (b"u9", b"\xc1garbage", {"trace": b"t1",
                                                                                   "reason": b"undecodable"})
    changelog = {(r.partition, r.key): r.value for r in kit.read_all(topics["changelog"])}
    assert changelog == {(1, b"a"): b"window of a", (0, b"b"): None}  # the partition asked for, not the key's


def test_msgpack_output(kit: KafkaKit, settings: Settings, topics: dict[str, str]) -> None:
    published = publisher(Producer(producer_config(settings)), topics, output_format="msgpack")
    published.recommendation(rec("a", version=3))
    published.confirm()
    [record] = kit.read_all(topics["output"])
    assert record.value is not None and msgpack.unpackb(record.value)["model_version"] == 3
    assert Recommendation.from_msgpack(record.value) == rec("a", version=3)


def test_a_record_the_broker_refuses_fails_the_confirm_once(kit: KafkaKit, settings: Settings,
                                                            topics: dict[str, str]) -> None:
    topics = {**topics, "dead_letters": kit.create_topic("small-dlq", 1, {"max.message.bytes": "2000"})}
    published = publisher(Producer(producer_config(settings)), topics)
    published.recommendation(rec("a"))
    published.dead_letter(DeadLetter(b"u", b"x" * 10_000, []))
    with pytest.raises(KafkaServiceError, match=rf"1 record\(s\) were not delivered, first: {topics['dead_letters']}"
                                                r"\[0\]: .*too large.*not committed"):
        published.confirm()
    published.recommendation(rec("b"))
    published.confirm()  # the failure was reported once; later records are judged on their own
    assert sorted(r.recommendation().user_id for r in kit.read_all(topics["output"])) == ["a", "b"]


@pytest.fixture
def transactional(settings: Settings, topics: dict[str, str]) -> Iterator[Publisher]:
    producer = Producer(producer_config(settings, transactional_id=f"test-publisher-{uuid.uuid4().hex[:8]}"))
    published = publisher(producer, topics)
    published.init_transactions()
    yield published
    producer.flush(10)


def test_a_transaction_shows_its_records_and_offsets_together(kit: KafkaKit, transactional: Publisher,
                                                              topics: dict[str, str]) -> None:
    source, group = kit.create_topic("input", 1), kit.name("group")
    consumer = Consumer({"bootstrap.servers": kit.bootstrap, "group.id": group})
    try:
        transactional.begin()
        transactional.recommendation(rec("a"))
        transactional.changelog(0, "a", b"window")
        transactional.commit([TopicPartition(source, 0, 42)], consumer.consumer_group_metadata())
    finally:
        consumer.close()
    assert [r.recommendation().user_id for r in kit.read_all(topics["output"], "read_committed")] == ["a"]
    assert kit.committed(group, source) == {0: 42}
    assert [r.value for r in kit.read_all(topics["changelog"], "read_committed")] == [b"window"]


def test_an_aborted_transaction_leaves_nothing_visible(kit: KafkaKit, transactional: Publisher,
                                                       topics: dict[str, str]) -> None:
    transactional.begin()
    transactional.recommendation(rec("lost"))
    transactional.dead_letter(DeadLetter(None, b"bad", []))
    transactional.producer.flush(30)  # on the broker already: the abort must hide them, not just drop them
    transactional.abort()
    transactional.begin()  # the producer goes on with the next transaction
    transactional.recommendation(rec("kept"))
    transactional.commit([], None)
    committed = [r.recommendation().user_id for r in kit.read_all(topics["output"], "read_committed")]
    written = [r.recommendation().user_id for r in kit.read_all(topics["output"], "read_uncommitted")]
    assert committed == ["kept"] and sorted(written) == ["kept", "lost"]  # written, but never visible
    assert kit.read_all(topics["dead_letters"], "read_committed") == []
