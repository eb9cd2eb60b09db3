"""Item text from a compacted items topic: records in either format, read to the end, then followed."""

from __future__ import annotations

import json

import msgpack
import pytest
from kafkakit import KafkaKit

from streamrec.catalog import Item
from streamrec.config import Settings, load_settings
from streamrec.errors import CatalogError
from streamrec.kafka.clients import KafkaServiceError
from streamrec.kafka.items import ItemsTopic, item_record, parse_item

TEAPOT = Item("7", "Teapot", "Kitchen", {"brand": "Acme", "colour": "红色"})


@pytest.mark.parametrize("wire_format", ["json", "msgpack"])
def test_a_written_item_parses_back_equal(wire_format: str) -> None:
    record = item_record(TEAPOT, wire_format)
    assert record.startswith(b"{") == (wire_format == "json")
    assert parse_item(record) == TEAPOT


def test_records_from_other_producers_parse_too() -> None:
    assert parse_item(msgpack.packb({"item_id": 7, "title": " Kettle ", "price": 12.5})) == Item(
        "7", "Kettle", "", {"price": "12.5"})  # ids and attributes become text, titles are trimmed
    assert parse_item(b' {"item_id": "9", "title": "Atlas", "category": "Books"}').display() == "Atlas (Books)"


@pytest.mark.parametrize(("value", "message"), [
    (b"{not json", "neither JSON nor msgpack"), (b"\xc1", "neither JSON nor msgpack"),
    (json.dumps(["7", "Teapot"]).encode(), "neither JSON nor msgpack"),  # JSON records are objects
    (msgpack.packb(["7", "Teapot"]), "not a map"), (msgpack.packb("Teapot"), "not a map"),
    (json.dumps({"title": "Teapot"}).encode(), "without 'item_id'"),
    (json.dumps({"item_id": "7", "title": "  "}).encode(), "has no 'title'"),
])
def test_unusable_records_are_catalog_errors(value: bytes, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_item(value)


@pytest.fixture
def settings(kit: KafkaKit) -> Settings:
    return load_settings(kafka={"bootstrap_servers": kit.bootstrap, "group": kit.name("group")})


@pytest.mark.kafka
def test_bootstrap_reads_every_partition_to_its_end_and_poll_follows(kit: KafkaKit, settings: Settings) -> None:
    topic = kit.create_topic("items", 3, {"cleanup.policy": "compact"})
    items = [Item(str(n), f"Item {n}", "Toys") for n in range(20)]
    kit.produce(topic, [(i.item_id.encode(), item_record(i, "json" if n % 2 else "msgpack"))
                        for n, i in enumerate(items)]
                + [(b"3", None), (b"bad", b"\xc1not an item"), (b"21", json.dumps({"item_id": "21"}).encode())])
    follower = ItemsTopic(settings, topic)
    try:
        assert follower.partitions == [0, 1, 2]
        loaded = follower.bootstrap(timeout_s=60)
        assert sorted(loaded, key=lambda i: int(i.item_id)) == items  # the tombstone removes nothing
        assert follower.bad_records == 2
        assert follower.poll() == []  # nothing new, and no waiting
        update = Item("5", "Giant Kite 5", "Toys")
        kit.produce(topic, [(b"5", item_record(update, "json")), (b"99", item_record(Item("99", "New"), "json"))])
        seen: list[Item] = []
        kit.wait_for(lambda: bool(seen.extend(follower.poll())) or len(seen) >= 2, "the new items", 30)
        assert sorted(seen, key=lambda i: i.item_id) == [update, Item("99", "New")]
    finally:
        follower.close()


@pytest.mark.kafka
def test_an_empty_items_topic_bootstraps_to_nothing(kit: KafkaKit, settings: Settings) -> None:
    follower = ItemsTopic(settings, kit.create_topic("no-items", 2, {"cleanup.policy": "compact"}))
    try:
        assert follower.bootstrap(timeout_s=30) == [] and follower.bad_records == 0
    finally:
        follower.close()


@pytest.mark.kafka
def test_a_missing_items_topic_is_an_error(kit: KafkaKit, settings: Settings) -> None:
    with pytest.raises(KafkaServiceError, match=rf"items topic '{kit.name('absent-items')}' does not exist"):
        ItemsTopic(settings, kit.name("absent-items"))
