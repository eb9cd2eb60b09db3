"""librdkafka configuration for every client the service makes.

``settings.kafka.config`` passes through unchanged to every client (``security.protocol``,
``sasl.*``, ``ssl.*``, ...), except that a ``${env:NAME}`` or ``${file:PATH}`` value is read from
there (:mod:`streamrec.kafka.security`: secrets stay out of the settings). Keys prefixed
``consumer.`` or ``producer.`` go, without the prefix, to that kind of client only (librdkafka
has no property with either prefix), e.g.
``consumer.session.timeout.ms: "10000"`` or ``producer.linger.ms: "20"``.

A few keys carry the service's delivery guarantees and are set here; a pass-through value
that contradicts one is a :class:`~streamrec.errors.ConfigError`, never silently overridden:

* consumer: ``enable.auto.commit=false`` (offsets are committed by the service, only after
  delivery is confirmed), ``partition.assignment.strategy=cooperative-sticky`` (the service
  uses incremental assign/unassign; eager strategies must not be mixed in), and under
  exactly-once ``isolation.level=read_committed``;
* producer: ``enable.idempotence=true`` (retries neither duplicate nor reorder a partition),
  and under exactly-once the ``transactional.id``.

Defaults that bound memory (overridable): at most 16 MiB of prefetched messages per consumer
(``queued.max.messages.kbytes``), 8 MiB per fetch, 1 MiB per partition per fetch.

Every client logs through :mod:`streamrec.kafka.client_logs` (repeats collapsed). With
``kafka.instance_id`` the group consumer is a static member (``group.instance.id``): a restart
within ``session.timeout.ms`` takes its partitions back without a rebalance.

"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from streamrec.config import Settings
from streamrec.errors import ConfigError, StreamrecError
from streamrec.kafka.client_logs import client_logger
from streamrec.kafka.security import resolve_secrets

CONSUMER_PREFIX = "consumer."
PRODUCER_PREFIX = "producer."

CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "queued.max.messages.kbytes": 16 * 1024,
    "fetch.max.bytes": 8 * 1024 * 1024,
    "max.partition.fetch.bytes": 1024 * 1024,
}
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    "acks": "all",
}
#: Partition keyed records the way the Java client does, so other producers agree with ours.
KEYED_PRODUCER_DEFAULTS: dict[str, Any] = {"partitioner": "murmur2_random"}
EAGER_STRATEGIES = ("range", "roundrobin")


class KafkaServiceError(StreamrecError):
    """The Kafka side failed in a way the service must not paper over (delivery, fencing)."""

    reason = "kafka"


class BrokerUnavailableError(KafkaServiceError):
    """The broker stayed unreachable past ``kafka.broker_timeout_seconds`` (``run`` exits 4)."""

    reason = "broker_unavailable"


def split_config(config: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """``(common, consumer_only, producer_only)`` from ``settings.kafka.config``.

    >>> split_config({"security.protocol": "SSL", "consumer.fetch.min.bytes": "1"})
    ({'security.protocol': 'SSL'}, {'fetch.min.bytes': '1'}, {})
    """
    common: dict[str, str] = {}
    consumer: dict[str, str] = {}
    producer: dict[str, str] = {}
    for key, value in resolve_secrets(config).items():
        if key.startswith(CONSUMER_PREFIX):
            consumer[key.removeprefix(CONSUMER_PREFIX)] = value
        elif key.startswith(PRODUCER_PREFIX):
            producer[key.removeprefix(PRODUCER_PREFIX)] = value
        else:
            common[key] = value
    return common, consumer, producer


def _enforce(config: dict[str, Any], required: Mapping[str, Any], why: str) -> dict[str, Any]:
    for key, value in required.items():
        given = config.get(key)
        if given is not None and str(given).lower() != str(value).lower():
            raise ConfigError(f"kafka.config sets {key}={given!r}, but the service needs {key}={value!r} "
                              f"({why}); remove it")
        config[key] = value
    return config


def _logging(settings: Settings) -> dict[str, Any]:
    return {"logger": client_logger(settings.kafka.log_repeat_seconds)}


def instance_id(settings: Settings) -> str | None:
    """``kafka.instance_id`` with ``{hostname}`` expanded (None: dynamic membership).

    >>> from streamrec.config import load_settings
    >>> instance_id(load_settings(kafka={"instance_id": "recs-{hostname}"})) == f"recs-{socket.gethostname()}"
    True
    """
    given = settings.kafka.instance_id
    return None if given is None else given.replace("{hostname}", socket.gethostname())


def admin_config(settings: Settings) -> dict[str, Any]:
    common, _, _ = split_config(settings.kafka.config)
    # Looking a topic up must not create it with the broker's defaults (auto.create.topics.enable).
    return {"bootstrap.servers": settings.kafka.bootstrap_servers, **_logging(settings), **common,
            "allow.auto.create.topics": False}


def consumer_config(settings: Settings, group_id: str | None = None, *, in_group: bool = True) -> dict[str, Any]:
    """Config for the service's group consumer, or (``in_group=False``) a consumer that only
    ``assign()``s partitions (changelog restore, items topic, tail) and never commits."""
    common, consumer_only, _ = split_config(settings.kafka.config)
    config: dict[str, Any] = {**CONSUMER_DEFAULTS, "bootstrap.servers": settings.kafka.bootstrap_servers,
                              **_logging(settings), **common, **consumer_only}
    if not in_group:
        for key in ("group.instance.id", "partition.assignment.strategy", "group.protocol"):
            config.pop(key, None)
        config.update({"group.id": group_id or f"{settings.kafka.group}-reader",
                       "enable.auto.commit": False, "enable.auto.offset.store": False})
        return config
    config["group.id"] = group_id or settings.kafka.group
    static = instance_id(settings)
    if static is not None:
        _enforce(config, {"group.instance.id": static}, "kafka.instance_id names the static member")
    _enforce(config, {"enable.auto.commit": False}, "offsets are committed only after delivery is confirmed")
    strategy = str(config.get("partition.assignment.strategy", ""))
    if any(name in strategy for name in EAGER_STRATEGIES):
        raise ConfigError(f"kafka.config sets partition.assignment.strategy={strategy!r}: the service "
                          "uses cooperative incremental rebalancing; eager assignors must not be mixed in")
    if str(config.get("group.protocol", "classic")) == "classic":
        config["partition.assignment.strategy"] = "cooperative-sticky"
    if settings.kafka.exactly_once:
        _enforce(config, {"isolation.level": "read_committed"}, "exactly-once reads committed data only")
    return config


def producer_config(settings: Settings, transactional_id: str | None = None, *,
                    keyed: bool = False) -> dict[str, Any]:
    common, _, producer_only = split_config(settings.kafka.config)
    config: dict[str, Any] = {**PRODUCER_DEFAULTS, **(KEYED_PRODUCER_DEFAULTS if keyed else {}),
                              "bootstrap.servers": settings.kafka.bootstrap_servers, **_logging(settings),
                              **common, **producer_only}
    _enforce(config, {"enable.idempotence": True}, "retries must not duplicate or reorder a partition")
    if transactional_id is not None:
        _enforce(config, {"transactional.id": transactional_id}, "exactly-once")
    return config


def default_transactional_id(settings: Settings) -> str:
    """``kafka.transactional_id``, else the static member's id, else one per process."""
    static = instance_id(settings)
    return (settings.kafka.transactional_id or (static and f"{settings.kafka.group}-{static}")
            or f"{settings.kafka.group}-{socket.gethostname()}-{os.getpid()}")
