"""Model snapshots through a real broker: chunked, verified, newest wins, old ones tombstoned."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from kafkakit import KafkaKit, make_log

from streamrec.catalog import Catalog, Item
from streamrec.config import Settings, load_settings
from streamrec.encoding import HFEncoder
from streamrec.kafka.model_topic import MANIFEST, ModelReader, ModelWriter, ensure_model_topic
from streamrec.pipeline import Pipeline
from streamrec.state import HEAD_FILE, WINDOWS_FILE

pytestmark = pytest.mark.kafka


def _settings(kit: KafkaKit, chunk_bytes: int = 4096) -> Settings:
    values = kit.settings(group=kit.name("group"), model_chunk_bytes=chunk_bytes)
    return load_settings(**values)


def _pipeline(settings: Settings, items: list[Item]) -> Pipeline:
    return Pipeline(settings, HFEncoder(settings.encoder), Catalog(items))


def _ranked(pipeline: Pipeline, users: list[str]) -> list[list[str]]:
    return [[item.item_id for item in rec.items] for rec in pipeline.recommend(users)]


def test_a_snapshot_travels_in_chunks_and_loads_into_another_pipeline(kit: KafkaKit,
                                                                    catalog_items: list[Item]) -> None:
    settings = _settings(kit)
    ensure_model_topic(settings)
    trainer = _pipeline(settings, catalog_items)
    events = make_log(n_users=40, events_per_user=(5, 10), seed=3)
    for start in range(0, len(events) - 64, 64):
        trainer.process(events[start:start + 64])
    writer = ModelWriter(settings, Producer({"bootstrap.servers": kit.bootstrap}), "trainer-a")
    first = writer.publish(trainer, {0: 10, 1: 7}, (1000, 2000))
    assert first.files[HEAD_FILE]["chunks"] > 1  # cut under model_chunk_bytes
    assert first.version == trainer.head.version and first.source == "trainer-a"

    scorer = _pipeline(settings, catalog_items)
    reader = ModelReader(settings)
    try:
        assert reader.read_to_end() == first
        reader.load(scorer)  # the model, not the trainer's windows
        assert scorer.head.version == trainer.head.version
        assert not list(scorer.windows.users())
        users = sorted(trainer.windows.users())[:6]
        scorer.restore_users(trainer.windows.snapshot(users))
        assert _ranked(scorer, users) == _ranked(trainer, users)

        trainer.process(events[-64:])  # learns more: the next snapshot is newer
        second = writer.publish(trainer, {0: 20, 1: 7}, (2000, 3000))
        newer = None
        for _ in range(50):
            newer = newer or reader.poll(0.2)
        assert newer == second and second.version > first.version
        files = reader.take_files()
        assert files.get(WINDOWS_FILE)  # the trainer's own restart needs them
        assert reader.live == set(second.keys())  # the first snapshot's chunks got tombstones
    finally:
        reader.close()


def test_torn_and_corrupt_snapshots_are_skipped_and_the_last_good_one_stays(kit: KafkaKit,
                                                                          catalog_items: list[Item]) -> None:
    settings = _settings(kit, chunk_bytes=64 * 1024)
    topic = ensure_model_topic(settings)
    pipeline = _pipeline(settings, catalog_items)
    producer = Producer({"bootstrap.servers": kit.bootstrap})
    good = ModelWriter(settings, producer, "trainer-a").publish(pipeline, {0: 1}, None)
    # a trainer killed mid-snapshot: chunks without their manifest
    producer.produce(topic, key=b"000000000099-dead/head.safetensors/0", value=b"x" * 100)
    # a manifest whose chunk does not match its checksum
    corrupt = good.to_json().replace(good.id.encode(), b"000000000100-bad")
    producer.produce(topic, key=b"000000000100-bad/head.safetensors/0", value=b"not the head")
    producer.produce(topic, key=MANIFEST, value=corrupt)
    producer.produce(topic, key=MANIFEST, value=b"{not json")
    producer.flush(30)

    reader = ModelReader(settings)
    try:
        assert reader.read_to_end() == good
        assert reader.skipped == 2
        assert b"000000000099-dead/head.safetensors/0" in reader.live  # for the next trainer to tombstone
    finally:
        reader.close()


def test_a_reader_of_a_topic_without_a_model_finds_none(kit: KafkaKit) -> None:
    settings = _settings(kit)
    ensure_model_topic(settings)
    reader = ModelReader(settings)
    try:
        assert reader.read_to_end(10) is None
        assert reader.poll(0.1) is None
    finally:
        reader.close()


def test_the_model_topic_can_be_named(kit: KafkaKit) -> None:
    settings = load_settings(**kit.settings(group=kit.name("group"), model_topic=kit.name("models")))
    assert ensure_model_topic(settings) == settings.kafka.model_topic
    assert kit.admin.list_topics(settings.kafka.model_topic, timeout=10).topics[settings.kafka.model_topic].partitions
