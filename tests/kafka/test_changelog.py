"""Evicted windows leave the changelog too: a restore never brings back a user the service let go."""

from __future__ import annotations

import json

import pytest
from kafkakit import KafkaKit

from streamrec.events import Event

pytestmark = pytest.mark.kafka

HOUR = 3_600_000


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
