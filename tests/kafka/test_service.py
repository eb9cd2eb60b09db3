"""The service end to end against a real broker: produce, run, SIGTERM, read everything back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kafkakit import KafkaKit, Record, assert_same_windows, make_log, reference_windows
from rich.console import Console

from streamrec.catalog import Catalog, Item
from streamrec.encoding import HFEncoder
from streamrec.errors import ConfigError
from streamrec.events import Event
from streamrec.kafka import KafkaService
from streamrec.kafka.produce import produce_events
from streamrec.kafka.tail import tail
from streamrec.pipeline import Pipeline
from streamrec.recommendations import Recommendation
from streamrec.state import HEAD_FILE
from streamrec.synthetic import write_events, write_items

pytestmark = pytest.mark.kafka


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("streamrec")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=180)


def test_end_to_end(kit: KafkaKit, tmp_path: Path, catalog_items: list[Item]) -> None:
    events = make_log(n_users=60, events_per_user=(5, 20))
    first, second = events[: len(events) * 3 // 4], events[len(events) * 3 // 4:]
    topic = kit.create_topic("events", 3)
    items_topic = kit.name("items")
    produced = _cli("produce", str(write_events(first, tmp_path / "events.csv")), "--topic", topic,
                    "--catalog", str(write_items(catalog_items, tmp_path / "items.csv")),
                    "--items-topic", items_topic, "--bootstrap-servers", kit.bootstrap, "--rate", "5000")
    assert produced.returncode == 0, produced.stderr
    assert f"sent {len(first)} events" in produced.stderr

    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"), items_topic=items_topic)
    config, settings = kit.write_config(values)
    service = kit.start(config)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    assert service.stop() == 0, service.log()[-3000:]

    inputs = kit.read_all(topic)
    assert len(inputs) == len(first) and {r.partition for r in inputs} == {0, 1, 2}
    last_event: dict[bytes | None, Record] = {}
    for record in inputs:  # partition then offset order; a user lives in one partition
        last_event[record.key] = record
    recs = kit.recommendations(settings.kafka.output_topic)
    last_rec: dict[bytes | None, tuple[Record, Recommendation]] = {}
    for record, rec in recs:
        last_rec[rec.user_id.encode()] = (record, rec)
    assert set(last_rec) == set(last_event)
    titles = {item.display() for item in catalog_items}
    for user, event in last_event.items():
        record, rec = last_rec[user]
        assert rec.source["partition"] == event.partition and rec.source["offset"] == event.offset
        assert rec.event_time == event.event()["timestamp"]
        assert record.timestamp >= event.timestamp  # produced after the user's last event
        assert {item.title for item in rec.items} <= titles  # item text came from the items topic
    assert max(rec.model_version for _, rec in recs) > 0
    assert kit.committed(settings.kafka.group, topic) == kit.end_offsets(topic)
    assert (settings.state_dir / HEAD_FILE).exists()
    version_before = max(rec.model_version for _, rec in recs)

    # A restart loads the head and restores every window from the changelog; an item published to
    # the items topic while it runs reaches the catalogue (a new user's reasons name it).
    output_ends = kit.end_offsets(settings.kafka.output_topic)
    service = kit.start(config)
    kit.wait_for(lambda: "assigned" in service.log(), "the restarted service to consume", 60, [service])
    kit.produce(items_topic, [(b"999", json.dumps({"item_id": "999", "title": "Zeppelin Lamp",
                                                   "category": "Garden"}).encode())])
    kit.wait_for(lambda: "added 1 items from" in service.log(), "the item to reach the catalogue", 30, [service])
    newcomer = [Event("newcomer", "999", "view", second[-1].timestamp + n, f"n{n}") for n in range(1, 4)]
    kit.produce_events(topic, second + newcomer)
    events = events + newcomer
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    assert service.stop() == 0, service.log()[-3000:]
    assert "loaded head" in service.log()
    after = [(r, rec) for r, rec in kit.recommendations(settings.kafka.output_topic)
             if r.offset >= output_ends[r.partition]]
    assert after and min(rec.model_version for _, rec in after) > version_before
    [newest] = [rec for _, rec in after if rec.user_id == "newcomer"][-1:]
    assert all("Zeppelin Lamp (Garden)" in item.reason for item in newest.items)
    assert_same_windows(kit.changelog_windows(f"{settings.kafka.group}-windows-changelog", settings),
                        reference_windows(settings, events))

    shown = _cli("tail", "--topic", settings.kafka.output_topic, "--from-beginning", "--max", "3", "--json",
                 "--bootstrap-servers", kit.bootstrap)
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert len(lines) == 3 and all(line["items"] and "model_version" in line for line in lines)
    console = Console(record=True, width=200)
    assert tail(settings, settings.kafka.output_topic, max_count=2, from_beginning=True, console=console) == 2
    text = console.export_text()
    assert text.count("model v") == 2 and "  1. " in text and "ms after produce" in text


def test_a_missing_input_topic_is_a_config_error(kit: KafkaKit) -> None:
    _, settings = kit.write_config(kit.settings(input_topic=kit.name("absent"), group=kit.name("group")))
    service = KafkaService(settings, Pipeline(settings, HFEncoder(settings.encoder), Catalog()))
    with pytest.raises(ConfigError, match="does not exist"):
        service.run()


def test_produce_creates_a_missing_topic_with_topic_partitions(kit: KafkaKit) -> None:
    """Never the broker's one-partition auto-creation: a second instance would sit idle."""
    _, settings = kit.write_config(kit.settings(topic_partitions=3))
    topic = kit.name("fresh")
    report = produce_events(settings, make_log(n_users=5, events_per_user=(2, 3)), topic, progress=False)
    assert report.failed == 0
    assert len(kit.admin.list_topics(topic, timeout=20).topics[topic].partitions) == 3


def test_service_settings_reach_the_probes_and_the_progress_line(kit: KafkaKit) -> None:
    _, settings = kit.write_config(kit.settings(liveness_timeout_seconds=7, progress_interval_seconds=11))
    service = KafkaService(settings, Pipeline(settings, HFEncoder(settings.encoder), Catalog()))
    assert service.health.liveness_timeout_s == 7 and service.progress.interval_s == 11
    assert service.health.ready_lag == 10 * settings.batch.max_size


def test_candidates_mode_serves_and_restarts_from_its_state(kit: KafkaKit) -> None:
    """A large-catalogue configuration (candidates, sparse co-occurrence) through the real service:
    every user served without their seen items, the text graph and sparse index checkpointed, and a
    restart that loads them and keeps serving."""
    events = make_log(n_users=40, events_per_user=(5, 15), seed=4)
    first, second = events[: len(events) // 2], events[len(events) // 2:]
    topic = kit.create_topic("events", 2)
    kit.produce_events(topic, first)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"))
    values["retrieval"].update(mode="candidates", candidates_cooccurrence=30, candidates_text=20)
    values["head"]["cooccurrence_index"] = "sparse"
    config, settings = kit.write_config(values)
    service = kit.start(config)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    assert service.stop() == 0, service.log()[-3000:]
    state = {path.name for path in settings.state_dir.iterdir()}
    assert {HEAD_FILE, "text_index.usearch", "cooccurrence.safetensors"} <= state

    service = kit.start(config)
    kit.produce_events(topic, second)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    assert service.stop() == 0, service.log()[-3000:]
    assert "loaded head" in service.log()
    seen: dict[str, set[str]] = {}
    served: dict[str, Recommendation] = {}
    for event in events:
        seen.setdefault(event.user_id, set()).add(event.item_id)
    for _, rec in kit.recommendations(settings.kafka.output_topic):
        served[rec.user_id] = rec
    assert set(served) == set(seen)
    for user, rec in served.items():  # the last one each user got, after all their events
        assert len(rec.items) == 5 and not {item.item_id for item in rec.items} & seen[user]
