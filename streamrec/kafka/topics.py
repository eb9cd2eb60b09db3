"""The topics the service reads and writes, created when missing.

The input topic must exist: its partition count fixes the changelog's. The output and
dead-letter topics are created with the same partition count if missing; the changelog with
``cleanup.policy=compact``. An existing changelog with another partition count, or without
compaction, is a :class:`~streamrec.errors.ConfigError`: windows would land in the wrong
partition, or vanish with old segments. Lookups never auto-create a topic.

Under ACLs (README: Security) a refused login, or a topic the principal may not describe or
create, is a :class:`~streamrec.errors.KafkaAuthError` at once, not a wait for the broker; a
topic whose configs it may not describe is checked as far as it can be, with a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streamrec.config import Settings
from streamrec.errors import ConfigError
from streamrec.kafka.clients import KafkaServiceError, admin_config
from streamrec.kafka.security import AuthWatch, raise_on_auth, raise_on_auth_exception

log = logging.getLogger(__name__)

ADMIN_TIMEOUT_S = 30.0
CONTACT_SLICE_S = 1.0  # the first request waits this long at a time, then checks for a refused login


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str]


def partition_count(admin: AdminClient, topic: str, use: str = "describe") -> int | None:
    """Partitions of ``topic``, or None if it does not exist; a topic the principal may not see is a
    :class:`~streamrec.errors.KafkaAuthError` saying it needs to ``use`` it (e.g. "read")."""
    metadata = admin.list_topics(topic, timeout=ADMIN_TIMEOUT_S)
    described = metadata.topics.get(topic)
    if described is not None:
        raise_on_auth(described.error, f"{use} topic {topic!r}")
    if described is None or described.error is not None or not described.partitions:
        return None
    return len(described.partitions)


def ensure_topic(admin: AdminClient, spec: TopicSpec, replication_factor: int = -1, use: str = "describe") -> int:
    """Create ``spec`` unless it exists; returns the topic's partition count."""
    existing = partition_count(admin, spec.name, use)
    if existing is not None:
        return existing
    new = NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=replication_factor,
                   config=dict(spec.config))
    try:
        admin.create_topics([new], operation_timeout=ADMIN_TIMEOUT_S)[spec.name].result()
        log.info("created topic %s (%d partitions, %s)", spec.name, spec.partitions, dict(spec.config))
    except KafkaException as exc:
        raise_on_auth_exception(exc, f"create topic {spec.name!r} (or have an admin create it)")
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise KafkaServiceError(f"cannot create topic {spec.name!r}: {exc}") from exc
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while (count := partition_count(admin, spec.name)) is None:  # metadata lags creation a little
        if time.monotonic() > deadline:
            raise KafkaServiceError(f"topic {spec.name!r} was created but its metadata is not visible")
        time.sleep(0.2)
    return count


def topic_config(admin: AdminClient, topic: str, key: str) -> str | None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource], request_timeout=ADMIN_TIMEOUT_S)[resource].result()
    entry = entries.get(key)
    return None if entry is None else entry.value



@dataclass(frozen=True)
class ServiceTopics:
    partitions: int  # of the input topic, hence of the output, dead-letter and changelog topics
    dead_letter_max_bytes: int | None  # the dead-letter topic's max.message.bytes (None: not readable)


def _max_message_bytes(admin: AdminClient, topic: str) -> int | None:
    try:
        value = topic_config(admin, topic, "max.message.bytes")
    except KafkaException as exc:  # e.g. no DescribeConfigs permission: the producer's limit still holds
        log.warning("cannot read max.message.bytes of %s (%s); checking dead letters against the producer's "
                    "message.max.bytes only", topic, exc)
        return None
    return int(value) if value is not None else None


def first_contact(admin: AdminClient, watch: AuthWatch, topic: str, timeout_s: float = ADMIN_TIMEOUT_S) -> None:
    """Ask for ``topic``'s metadata until the broker answers; a refused login raises
    :class:`~streamrec.errors.KafkaAuthError` within a second (librdkafka would retry it until
    the timeout), anything else the last error after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(topic, timeout=min(CONTACT_SLICE_S, max(deadline - time.monotonic(), 0.1)))
            return
        except KafkaException as exc:
            watch.check(admin)
            if exc.args[0].code() not in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT) or time.monotonic() >= deadline:
                raise


def ensure_service_topics(settings: Settings, changelog_topic: str) -> ServiceTopics:
    """Check or create the service's topics."""
    kafka = settings.kafka
    watch = AuthWatch()
    config: dict[str, Any] = {**admin_config(settings), "error_cb": watch}
    admin = AdminClient(config)
    first_contact(admin, watch, kafka.input_topic)
    partitions = partition_count(admin, kafka.input_topic, "read")
    if partitions is None:
        raise ConfigError(f"input topic {kafka.input_topic!r} does not exist on {kafka.bootstrap_servers}; "
                          "create it first (its partition count fixes the changelog's)")
    replicas = kafka.topic_replication_factor
    for topic in (kafka.output_topic, kafka.dead_letter_topic):
        ensure_topic(admin, TopicSpec(topic, partitions, {}), replicas, "write to")
    found = ensure_topic(admin, TopicSpec(changelog_topic, partitions, {"cleanup.policy": "compact"}), replicas,
                         "read and write")
    if found != partitions:
        raise ConfigError(f"changelog {changelog_topic!r} has {found} partitions but the input topic has "
                          f"{partitions}; they must match (user windows follow input partitions)")
    try:
        policy = topic_config(admin, changelog_topic, "cleanup.policy") or ""
    except KafkaException as exc:
        if not isinstance(exc.args[0], KafkaError) or exc.args[0].code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise
        log.warning("cannot check that changelog %s is compacted (%s: no DescribeConfigs ACL); make sure its "
                    "cleanup.policy is compact", changelog_topic, exc.args[0].str())
        policy = "compact"
    if "compact" not in policy:
        raise ConfigError(f"changelog {changelog_topic!r} has cleanup.policy={policy!r}; it must be compact, "
                          "or windows are lost when old segments are deleted")
    return ServiceTopics(partitions, _max_message_bytes(admin, kafka.dead_letter_topic))
