"""librdkafka configs: pass-through, per-client prefixes, and the keys the guarantees rest on."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streamrec.config import Settings, load_settings
from streamrec.errors import ConfigError
from streamrec.kafka import commands
from streamrec.kafka.client_logs import RepeatFilter
from streamrec.kafka.clients import admin_config, consumer_config, default_transactional_id, producer_config


def _settings_from_flags(config: Path, flags: dict[str, object]) -> Settings:
    """What the commands do with their flags: unset (None) flags override nothing."""
    return commands._settings(config, commands._kafka_overrides(**flags))


def _settings(**kafka: object) -> Settings:
    return load_settings(kafka=kafka)


def test_security_settings_pass_through_to_every_client() -> None:
    secure = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "u",
              "sasl.password": "p", "ssl.ca.location": "/etc/ca.pem"}
    settings = _settings(config=secure)
    for config in (consumer_config(settings), producer_config(settings), admin_config(settings),
                   consumer_config(settings, "reader", in_group=False)):
        assert secure.items() <= config.items()


def test_prefixed_keys_reach_only_their_client() -> None:
    settings = _settings(config={"consumer.session.timeout.ms": "10000", "producer.linger.ms": "20"})
    consumer, producer = consumer_config(settings), producer_config(settings)
    assert consumer["session.timeout.ms"] == "10000" and "linger.ms" not in consumer
    assert producer["linger.ms"] == "20" and "session.timeout.ms" not in producer
    assert not any(key.startswith(("consumer.", "producer.")) for key in {**consumer, **producer})


def test_delivery_guarantee_keys_are_enforced() -> None:
    consumer = consumer_config(_settings(group="g"))
    assert consumer["enable.auto.commit"] is False and consumer["group.id"] == "g"
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    assert producer_config(_settings())["enable.idempotence"] is True
    eos = _settings(exactly_once=True)
    assert consumer_config(eos)["isolation.level"] == "read_committed"
    assert producer_config(eos, "txn-1")["transactional.id"] == "txn-1"


@pytest.mark.parametrize("config", [
    {"enable.auto.commit": "true"},
    {"consumer.enable.auto.commit": "true"},
    {"partition.assignment.strategy": "range"},
    {"consumer.partition.assignment.strategy": "roundrobin,cooperative-sticky"},
    {"producer.enable.idempotence": "false"},
])
def test_contradicting_a_guarantee_is_a_config_error(config: dict[str, str]) -> None:
    settings = _settings(config=config)
    with pytest.raises(ConfigError, match=r"remove it|eager"):
        consumer_config(settings)
        producer_config(settings)


def test_exactly_once_refuses_read_uncommitted() -> None:
    with pytest.raises(ConfigError, match=r"isolation\.level"):
        consumer_config(_settings(exactly_once=True, config={"isolation.level": "read_uncommitted"}))


def test_bounded_fetch_defaults_can_be_overridden() -> None:
    assert consumer_config(_settings())["queued.max.messages.kbytes"] == 16 * 1024
    settings = _settings(config={"consumer.queued.max.messages.kbytes": "4096"})
    assert consumer_config(settings)["queued.max.messages.kbytes"] == "4096"


def test_assign_only_readers_never_join_or_commit() -> None:
    settings = _settings(config={"consumer.group.instance.id": "pod-0"})
    reader = consumer_config(settings, "reader", in_group=False)
    assert reader["enable.auto.commit"] is False and reader["group.id"] == "reader"
    assert "group.instance.id" not in reader  # would fence the service's own static member


def test_instance_id_makes_the_group_consumer_a_static_member() -> None:
    settings = _settings(instance_id="recs-{hostname}", group="g")
    static = consumer_config(settings)["group.instance.id"]
    assert static == f"recs-{socket.gethostname()}"
    assert "group.instance.id" not in consumer_config(settings, "reader", in_group=False)
    assert "group.instance.id" not in consumer_config(_settings())  # dynamic by default
    assert default_transactional_id(load_settings(kafka={"instance_id": "pod-3", "group": "g"})) == "g-pod-3"
    with pytest.raises(ConfigError, match=r"group\.instance\.id"):
        consumer_config(_settings(instance_id="a", config={"consumer.group.instance.id": "b"}))


def test_every_client_logs_through_the_repeat_filter() -> None:
    settings = _settings(log_repeat_seconds=7)
    for config in (consumer_config(settings), producer_config(settings), admin_config(settings)):
        [repeats] = [f for f in config["logger"].filters if isinstance(f, RepeatFilter)]
        assert repeats.interval_s == 7


def test_admin_lookups_never_auto_create_topics() -> None:
    assert admin_config(_settings())["allow.auto.create.topics"] is False


def test_flags_override_environment_which_overrides_the_config_file(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "streamrec.yaml"
    config.write_text("kafka:\n  group: from-file\n  input_topic: file-events\n  output_topic: file-recs\n")
    monkeypatch.setenv("STREAMREC_KAFKA__GROUP", "from-env")
    monkeypatch.setenv("STREAMREC_KAFKA__OUTPUT_TOPIC", "env-recs")
    monkeypatch.setenv("STREAMREC_KAFKA__CONFIG", '{"security.protocol": "SSL"}')
    settings = _settings_from_flags(config, {"group": "from-flag", "bootstrap_servers": None})
    assert (settings.kafka.group, settings.kafka.output_topic, settings.kafka.input_topic) == \
        ("from-flag", "env-recs", "file-events")
    assert consumer_config(settings)["security.protocol"] == "SSL"
    assert _settings_from_flags(config, {}).kafka.group == "from-env"


def test_secrets_come_from_the_environment_or_a_file_never_from_the_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TEST_SECRET", "from-env")
    (tmp_path / "secret").write_text("from-file\n")
    settings = _settings(config={"sasl.password": "${env:KAFKA_TEST_SECRET}",
                                 "producer.ssl.key.password": f"${{file:{tmp_path / 'secret'}}}"})
    assert "from-env" not in repr(settings) and "from-file" not in repr(settings)
    assert consumer_config(settings)["sasl.password"] == admin_config(settings)["sasl.password"] == "from-env"
    assert producer_config(settings)["ssl.key.password"] == "from-file"  # one trailing newline dropped
    monkeypatch.delenv("KAFKA_TEST_SECRET")
    with pytest.raises(ConfigError, match=r"sasl\.password: environment variable KAFKA_TEST_SECRET is not set"):
        consumer_config(settings)


def test_an_invalid_kafka_config_value_is_not_shown_in_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(kafka={"config": {"sasl.password": 918273645}})
    assert "918273645" not in str(caught.value) and "kafka.config.sasl.password" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None  # nor in a traceback
