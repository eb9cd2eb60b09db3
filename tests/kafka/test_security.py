"""The service on a SASL_SSL listener (SCRAM-SHA-512 over TLS) of a broker that enforces ACLs.

The broker (``scripts/kafka-up.sh`` with ``KAFKA_SASL_SSL_PORT``, one for this module, its CA and
certificate made at start) knows two users: ``admin`` and ``streamrec``. Its PLAINTEXT listener
(a super user, on 127.0.0.1) is the admin's way in: the tests make topics, grant ACLs, produce
events and read results there. The service logs in as ``User:streamrec`` with the password from
an environment variable, holding only :func:`least_privilege` (the README's Security table):
it runs end to end with exactly that, a wrong password or one ACL less stops it with exit code 5
within seconds, and the password is never in its output or its metrics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from kafkakit import KafkaKit, LocalBroker, ServiceProcess, make_log, probe

from streamrec.kafka.items import item_record

pytestmark = pytest.mark.kafka

PASSWORD = "s3cret-Pa55-for-streamrec"  # what the tests look for in every output
PASSWORD_ENV = "STREAMREC_TEST_KAFKA_PASSWORD"
PRINCIPAL = "User:streamrec"
EXIT_AUTH = 5


@dataclass(frozen=True)
class SecureBroker:
    plaintext: str  # the admin's listener (super user)
    sasl_ssl: str  # the service's listener
    ca: Path


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    state = tmp_path_factory.mktemp("secure-broker")
    sasl_port = KafkaKit.free_port()
    broker = LocalBroker(KafkaKit.free_port(), KafkaKit.free_port(), state, KAFKA_SASL_SSL_PORT=str(sasl_port),
                         KAFKA_SCRAM_USERS=f"admin=admin-{PASSWORD} streamrec={PASSWORD}")
    broker.start()
    try:
        yield SecureBroker(broker.bootstrap, f"127.0.0.1:{sasl_port}", state / "tls" / "ca.pem")
    finally:
        broker.stop()


@dataclass(frozen=True)
class Names:
    input: str
    items: str
    output: str
    dead_letters: str
    changelog: str
    group: str


def allow(kind: ResourceType, name: str, operation: AclOperation,
          pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(kind, name, pattern, PRINCIPAL, "*", operation, AclPermissionType.ALLOW)


def least_privilege(names: Names) -> list[AclBinding]:
    """What ``streamrec run`` needs, the topics made by an admin (READ and WRITE imply DESCRIBE).
    The changelog restore and the items topic are read outside the group, by consumers whose group
    ids start with ``<group>-``: they only look their coordinator up (DESCRIBE)."""
    return [
        allow(ResourceType.TOPIC, names.input, AclOperation.READ),
        allow(ResourceType.TOPIC, names.items, AclOperation.READ),
        allow(ResourceType.TOPIC, names.changelog, AclOperation.READ),
        allow(ResourceType.TOPIC, names.changelog, AclOperation.WRITE),
        allow(ResourceType.TOPIC, names.output, AclOperation.WRITE),
        allow(ResourceType.TOPIC, names.dead_letters, AclOperation.WRITE),
        allow(ResourceType.GROUP, names.group, AclOperation.READ),
        allow(ResourceType.GROUP, f"{names.group}-", AclOperation.DESCRIBE, ResourcePatternType.PREFIXED),
        # exactly-once only: the default transactional id is <group>-<hostname>-<pid>
        allow(ResourceType.TRANSACTIONAL_ID, f"{names.group}-", AclOperation.WRITE, ResourcePatternType.PREFIXED),
    ]


def _grant(admin: AdminClient, acls: list[AclBinding]) -> None:
    for future in admin.create_acls(acls).values():
        future.result()


def _setup(broker: SecureBroker, tiny_model: Path, tmp_path: Path, catalog_items: list[Any],
           acls: Callable[[Names], list[AclBinding]] = least_privilege,
           password: str = f"${{env:{PASSWORD_ENV}}}", made: bool = True) -> tuple[KafkaKit, Names, Path]:
    """Topics made by the admin (only input and items unless ``made``), ``acls`` granted, the items
    published, and the service's config."""
    kit = KafkaKit(broker.plaintext, tiny_model, tmp_path)
    group = kit.name("secure")
    names = Names(kit.name("events"), kit.name("items"), kit.name("recs"), kit.name("dlq"),
                  f"{group}-windows-changelog", group)
    for topic in (names.input, names.items, *((names.output, names.dead_letters) if made else ())):
        kit.create_topic(topic, 2, exact=True)
    if made:
        kit.create_topic(names.changelog, 2, {"cleanup.policy": "compact"}, exact=True)
    _grant(kit.admin, acls(names))
    kit.produce(names.items, [(item.item_id.encode(), item_record(item, "msgpack")) for item in catalog_items])
    security = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "streamrec", "sasl.password": password, "ssl.ca.location": str(broker.ca)}
    values = kit.settings(input_topic=names.input, output_topic=names.output, dead_letter_topic=names.dead_letters,
                          items_topic=names.items, group=group, config=security)
    values["kafka"]["bootstrap_servers"] = broker.sasl_ssl
    config, _ = kit.write_config(values)
    return kit, names, config


@pytest.fixture
def password_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def _assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text  # not even the admin's, which contains it


def _exit_within(service: ServiceProcess, seconds: float) -> int:
    code = service.proc.wait(seconds)
    service.stop()
    return code


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "password_from"), [("at-least-once", "env"), ("exactly-once", "file")])
def test_the_service_runs_end_to_end_with_least_privilege_acls(
        mode: str, password_from: str, secure_broker: SecureBroker, tiny_model: Path, tmp_path: Path,
        catalog_items: list[Any], password_in_env: None) -> None:
    """Events in, recommendations and a dead letter out, windows written, and after a restart read
    back from the changelog: every topic and group with the access it needs, and no more. The
    password comes from an environment variable, or from a file."""
    password_file = tmp_path / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    password = f"${{env:{PASSWORD_ENV}}}" if password_from == "env" else f"${{file:{password_file}}}"
    kit, names, config = _setup(secure_broker, tiny_model, tmp_path, catalog_items, password=password)
    first, later = make_log(n_users=20, events_per_user=(3, 6)), make_log(n_users=20, events_per_user=(2, 3), seed=1)
    kit.produce_events(names.input, first)
    kit.produce(names.input, [(b"u-bad", b"not an event")])
    port = kit.free_port()
    args = ["--metrics-address", f"127.0.0.1:{port}"] + (["--exactly-once"] if mode == "exactly-once" else [])
    try:
        service = kit.start(config, *args)
        kit.wait_caught_up(names.group, names.input, [service])
        assert service.stop() == 0, service.log()[-3000:]
        kit.produce_events(names.input, later)
        restarted = kit.start(config, *args, name="restarted")
        kit.wait_caught_up(names.group, names.input, [restarted])
        metrics = probe(port, "/metrics")[1]
        assert restarted.stop() == 0, restarted.log()[-3000:]
    finally:
        kit.cleanup()
    recommended = {rec.user_id for _, rec in kit.recommendations(names.output)}
    assert recommended == {event.user_id for event in first + later}
    assert [record.key for record in kit.read_all(names.dead_letters)] == [b"u-bad"]
    assert re.search(r"\(([1-9]\d*) windows restored\)", restarted.log()), restarted.log()[-3000:]
    assert "streamrec_recommendations_produced_total" in metrics
    _assert_no_password(service.log(), restarted.log(), metrics, config.read_text())


def test_a_wrong_password_exits_5_at_once_without_showing_a_password(
        secure_broker: SecureBroker, tiny_model: Path, tmp_path: Path, catalog_items: list[Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD[::-1])  # the wrong one holds no copy of the right one
    kit, _, config = _setup(secure_broker, tiny_model, tmp_path, catalog_items)
    service = kit.start(config, log_level="DEBUG")
    # at once: not after kafka.broker_timeout_seconds (300 s), as a broker that does not answer would
    assert _exit_within(service, 60) == EXIT_AUTH, service.log()[-3000:]
    output = " ".join(service.log().split())  # rich wraps the error line
    assert "authentication failed" in output and "invalid credentials" in output
    assert PASSWORD[::-1] not in output
    _assert_no_password(output)


def test_a_missing_password_file_exits_2_naming_it(
        secure_broker: SecureBroker, tiny_model: Path, tmp_path: Path, catalog_items: list[Any]) -> None:
    missing = tmp_path / "no-such-password"
    kit, _, config = _setup(secure_broker, tiny_model, tmp_path, catalog_items, password=f"${{file:{missing}}}")
    service = kit.start(config)
    assert _exit_within(service, 60) == 2, service.log()[-3000:]
    assert "kafka.config sasl.password: cannot read" in " ".join(service.log().split())


def _without(resource: Callable[[Names], str], operation: AclOperation,
             instead: AclOperation | None = None) -> Callable[[Names], list[AclBinding]]:
    """The least privilege less one ACL (``instead``: with another operation on the same resource)."""
    def acls(names: Names) -> list[AclBinding]:
        kept = [acl for acl in least_privilege(names) if (acl.name, acl.operation) != (resource(names), operation)]
        assert len(kept) == len(least_privilege(names)) - 1
        replaced = [acl for acl in least_privilege(names) if acl not in kept]
        if instead is not None:
            kept.append(allow(replaced[0].restype, replaced[0].name, instead, replaced[0].resource_pattern_type))
        return kept
    return acls


MISSING = {  # what is taken away, and what the error must say
    "input READ": (_without(lambda n: n.input, AclOperation.READ), "not authorized to read topic '{input}'"),
    "output WRITE, READ instead": (_without(lambda n: n.output, AclOperation.WRITE, AclOperation.READ),
                                   "not authorized to write to topic '{output}'"),
    "dead letters WRITE": (_without(lambda n: n.dead_letters, AclOperation.WRITE),
                           "not authorized to write to topic '{dead_letters}'"),
    "changelog READ": (_without(lambda n: n.changelog, AclOperation.READ),
                       "not authorized to read the changelog topic '{changelog}'"),
    "group READ": (_without(lambda n: n.group, AclOperation.READ), "not authorized to use consumer group '{group}'"),
    "readers' groups DESCRIBE": (_without(lambda n: f"{n.group}-", AclOperation.DESCRIBE),
                                 "not authorized to use consumer group '{group}-items-"),
    "transactional id WRITE": (_without(lambda n: f"{n.group}-", AclOperation.WRITE),
                               "Transactional Id authorization failed"),
}


@pytest.mark.parametrize("missing", list(MISSING))
def test_a_missing_acl_exits_5_naming_what_was_refused(
        missing: str, secure_broker: SecureBroker, tiny_model: Path, tmp_path: Path,
        catalog_items: list[Any], password_in_env: None) -> None:
    acls, message = MISSING[missing]
    kit, names, config = _setup(secure_broker, tiny_model, tmp_path, catalog_items, acls)
    kit.produce_events(names.input, make_log(n_users=5, events_per_user=(2, 3)))
    kit.produce(names.changelog, [(b"someone", None)])  # something to restore (a tombstone)
    service = kit.start(config, *(["--exactly-once"] if "transactional" in missing else []))
    assert _exit_within(service, 60) == EXIT_AUTH, service.log()[-3000:]
    output = " ".join(service.log().split())  # rich wraps the error line
    assert message.format(**vars(names)) in output, output[-3000:]
    _assert_no_password(output)


def test_topics_not_made_by_an_admin_exit_5_saying_so(
        secure_broker: SecureBroker, tiny_model: Path, tmp_path: Path, catalog_items: list[Any],
        password_in_env: None) -> None:
    """The least privilege holds no Create: a missing output topic is an admin's to make."""
    kit, names, config = _setup(secure_broker, tiny_model, tmp_path, catalog_items, made=False)
    service = kit.start(config)
    assert _exit_within(service, 60) == EXIT_AUTH, service.log()[-3000:]
    output = " ".join(service.log().split())
    assert f"not authorized to create topic '{names.output}' (or have an admin create it)" in output, output[-3000:]
