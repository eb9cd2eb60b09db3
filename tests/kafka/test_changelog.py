"""Evicted windows leave the changelog too: a restore never brings back a user the service let go."""

from __future__ import annotations

import json

import msgpack
import pytest
from kafkakit import KafkaKit

from streamrec.errors import CheckpointError
from streamrec.events import Event
from streamrec.kafka.changelog import merge_snapshots

HOUR = 3_600_000


@pytest.mark.parametrize(("record", "error"), [
    (msgpack.packb({"version": 2, "users": {"u1": {}}}), "not a version-1 window snapshot"),
    (b"\x93garbage", "changelog record is unreadable"),
])
def test_a_changelog_record_of_an_unknown_version_is_a_clear_error(record: bytes, error: str) -> None:
    good = msgpack.packb({"version": 1, "users": {}})
    with pytest.raises(CheckpointError, match=error):  # the service exits 2 with it: restarting cannot help
        merge_snapshots([good, record])


@pytest.mark.kafka
def test_idle_users_are_tombstoned_and_not_restored(kit: KafkaKit) -> None:
    topic = kit.create_topic("events", 2)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"))
    values["window"]["idle_ttl_seconds"] = 3600
    config, settings = kit.write_config(values)
    start = 1_700_000_000_000
    old = [Event(f"old{n}", str(n % 7), "view", start + n) for n in range(30)]
    new = [Event(f"new{n}", str(n % 7), "view", start + 2 * HOUR + n) for n in range(30)]
    service = kit.start(config)
    kit.produce_events(topic, old)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    kit.produce_events(topic, new)
    kit.wait_caught_up(settings.kafka.group, topic, [service])
    assert service.stop() == 0, service.log()[-3000:]
    changelog = f"{settings.kafka.group}-windows-changelog"
    assert sorted(kit.changelog_windows(changelog, settings).users()) == sorted(e.user_id for e in new)
    # Each partition saw a newer event two hours on: its old users were evicted and tombstoned.
    stats = json.loads(service.log().splitlines()[-1])["stats"]
    assert stats["evicted_users"] >= len(old)

    service = kit.start(config)  # restores from the changelog: the new users only
    kit.wait_for(lambda: "windows restored" in service.log(), "the restore", 60, [service])
    assert service.stop() == 0
    stats = json.loads(service.log().splitlines()[-1])["stats"]
    assert stats["restored_users"] == len(new)
