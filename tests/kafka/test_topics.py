"""The service's topics on the broker: looked up without creating them, created when missing, checked when present."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient
from kafkakit import KafkaKit

from streamrec.config import Settings, load_settings
from streamrec.errors import ConfigError
from streamrec.kafka.clients import admin_config
from streamrec.kafka.topics import (
    ServiceTopics,
    TopicSpec,
    ensure_service_topics,
    ensure_topic,
    partition_count,
    topic_config,
)

pytestmark = pytest.mark.kafka


def service_settings(kit: KafkaKit, input_topic: str) -> Settings:
    return load_settings(kafka={"bootstrap_servers": kit.bootstrap, "input_topic": input_topic,
                                "output_topic": kit.name("recs"), "dead_letter_topic": kit.name("dlq")})


@pytest.fixture
def admin(kit: KafkaKit) -> AdminClient:
    return AdminClient(admin_config(load_settings(kafka={"bootstrap_servers": kit.bootstrap})))


def test_a_lookup_counts_partitions_and_never_creates_the_topic(kit: KafkaKit, admin: AdminClient) -> None:
    assert partition_count(admin, kit.create_topic("three", 3)) == 3
    missing = kit.name("absent")
    assert partition_count(admin, missing) is None
    assert missing not in kit.admin.list_topics(timeout=10).topics  # the broker would auto-create it on a lookup


def test_ensure_topic_creates_a_missing_topic_with_its_config(kit: KafkaKit, admin: AdminClient) -> None:
    name = kit.name("created")
    assert ensure_topic(admin, TopicSpec(name, 4, {"cleanup.policy": "compact", "retention.ms": "3600000"})) == 4
    assert partition_count(admin, name) == 4
    assert topic_config(admin, name, "cleanup.policy") == "compact"
    assert topic_config(admin, name, "retention.ms") == "3600000"
    assert topic_config(admin, name, "no.such.key") is None


def test_ensure_topic_leaves_an_existing_topic_as_it_is(kit: KafkaKit, admin: AdminClient) -> None:
    name = kit.create_topic("existing", 2)
    assert ensure_topic(admin, TopicSpec(name, 5, {"cleanup.policy": "compact"})) == 2
    assert partition_count(admin, name) == 2 and topic_config(admin, name, "cleanup.policy") == "delete"


def test_the_service_topics_follow_the_input_topics_partitions(kit: KafkaKit, admin: AdminClient) -> None:
    settings = service_settings(kit, kit.create_topic("events", 3))
    kit.create_topic("dlq", 1, {"max.message.bytes": "300000"})  # made beforehand, smaller
    changelog = kit.name("changelog")
    topics = ensure_service_topics(settings, changelog)
    assert topics == ServiceTopics(partitions=3, dead_letter_max_bytes=300_000)
    assert partition_count(admin, settings.kafka.output_topic) == 3
    assert partition_count(admin, settings.kafka.dead_letter_topic) == 1  # existing: left alone
    assert partition_count(admin, changelog) == 3 and topic_config(admin, changelog, "cleanup.policy") == "compact"
    assert ensure_service_topics(settings, changelog) == topics  # a restart finds them all


def test_a_missing_input_topic_is_a_config_error_and_creates_nothing(kit: KafkaKit) -> None:
    settings = service_settings(kit, kit.name("no-events"))
    with pytest.raises(ConfigError, match=rf"input topic '{settings.kafka.input_topic}' does not exist .*create it"):
        ensure_service_topics(settings, kit.name("changelog"))
    topics = kit.admin.list_topics(timeout=10).topics
    assert not {settings.kafka.input_topic, settings.kafka.output_topic, kit.name("changelog")} & set(topics)


@pytest.mark.parametrize(("partitions", "config", "error"), [
    (2, {"cleanup.policy": "compact"}, r"has 2 partitions but the input topic has 3; they must match"),
    (3, {"cleanup.policy": "delete"}, r"has cleanup.policy='delete'; it must be compact"),
])
def test_a_changelog_that_would_lose_windows_is_a_config_error(kit: KafkaKit, partitions: int,
                                                               config: dict[str, str], error: str) -> None:
    settings = service_settings(kit, kit.create_topic("events", 3))
    changelog = kit.create_topic("changelog", partitions, config)
    with pytest.raises(ConfigError, match=rf"changelog '{changelog}' {error}"):
        ensure_service_topics(settings, changelog)
