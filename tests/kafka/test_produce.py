"""``streamrec produce``: a recorded log onto a topic, keyed by user in time order, with its items first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafkakit import KafkaKit, make_log

from streamrec.catalog import Item
from streamrec.config import load_settings
from streamrec.events import ActionVocabulary, decode_event
from streamrec.kafka.items import parse_item
from streamrec.kafka.produce import load_events, produce_events, produce_log
from streamrec.kafka.topics import topic_config
from streamrec.synthetic import write_events, write_items

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
VOCAB = ActionVocabulary.for_domain("ecommerce")


def test_load_events_takes_the_vocabulary_the_log_format_implies() -> None:
    settings = load_settings(domain="ecommerce")  # MovieLens ratings are watch/like: the video domain
    events, items, rejected = load_events(settings, FIXTURES / "ml-100k")
    assert [e.action for e in events] == ["watch", "like", "watch", "like", "watch"]
    assert len(items) == 4 and rejected == 1
    timestamps = [e.timestamp for e in events]
    assert timestamps == sorted(timestamps)


def test_load_events_applies_the_column_map_and_the_limit() -> None:
    settings = load_settings()
    column_map = {"event_id": "eid", "user_id": "uid", "item_id": "product", "action": "kind", "timestamp": "ts"}
    events, items, rejected = load_events(settings, FIXTURES / "events.csv", column_map=column_map)
    assert (len(events), items, rejected) == (6, [], 4)
    limited, _, _ = load_events(settings, FIXTURES / "events.csv", "csv", column_map, limit=2)
    assert len(limited) == 2


@pytest.mark.kafka
@pytest.mark.parametrize("wire_format", ["msgpack", "json"])
def test_events_are_keyed_by_user_in_time_order_and_items_go_to_a_compacted_topic(
        kit: KafkaKit, wire_format: str) -> None:
    settings = load_settings(kafka={"bootstrap_servers": kit.bootstrap})
    events = make_log(n_users=15, events_per_user=(3, 8))
    items = [Item("1", "Kettle", "Kitchen"), Item("2", "Atlas", "Books", {"pages": "300"})]
    topic, items_topic = kit.name("events"), kit.name("items")
    report = produce_events(settings, events, topic, items=items, items_topic=items_topic, partitions=4,
                            wire_format=wire_format, progress=False)  # type: ignore[arg-type]
    assert (report.events, report.items, report.failed, report.first_error) == (len(events), 2, 0, None)
    assert report.seconds > 0

    records = kit.read_all(topic)
    assert {r.partition for r in records} <= {0, 1, 2, 3} and len({r.partition for r in records}) > 1
    assert all(r.value is not None and r.value.startswith(b"{") == (wire_format == "json") for r in records)
    decoded = [(r, decode_event(r.value or b"", VOCAB)) for r in records]
    assert sorted((e.timestamp, e.event_id) for _, e in decoded) == sorted((e.timestamp, e.event_id) for e in events)
    partition_of: dict[str, int] = {}
    for record, event in decoded:
        assert record.key == event.user_id.encode()
        assert partition_of.setdefault(event.user_id, record.partition) == record.partition  # one partition per user
    for partition in range(4):
        times = [e.timestamp for r, e in decoded if r.partition == partition]
        assert times == sorted(times)  # in time order within each partition

    published = kit.read_all(items_topic)
    assert [(r.key, parse_item(r.value or b"")) for r in published] == [(b"1", items[0]), (b"2", items[1])]
    described = kit.admin.list_topics(items_topic, timeout=10).topics[items_topic]
    assert len(described.partitions) == 1 and topic_config(kit.admin, items_topic, "cleanup.policy") == "compact"


@pytest.mark.kafka
def test_produce_log_reports_rejected_records_and_publishes_the_catalogue(kit: KafkaKit, tmp_path: Path) -> None:
    settings = load_settings(kafka={"bootstrap_servers": kit.bootstrap})
    events = make_log(n_users=6, events_per_user=(2, 4))
    log = write_events(events, tmp_path / "events.jsonl")
    with log.open("a") as fh:
        fh.write(json.dumps({"user_id": "u", "item_id": "1", "action": "teleport", "timestamp": 5}) + "\n")
    catalog = write_items([Item("c1", "Lamp", "Garden")], tmp_path / "items.csv")
    topic, items_topic = kit.create_topic("events", 2), kit.name("items")
    report = produce_log(settings, log, topic, catalog_path=catalog, items_topic=items_topic, limit=10,
                         progress=False)
    assert (report.events, report.rejected, report.items, report.failed) == (min(10, len(events)), 0, 1, 0)
    whole = produce_log(settings, log, topic, progress=False)
    assert (whole.events, whole.rejected, whole.items) == (len(events), 1, 0)
    assert len(kit.read_all(topic)) == report.events + whole.events
    assert [parse_item(r.value or b"").title for r in kit.read_all(items_topic)] == ["Lamp"]
