"""The broker fails under the service: unreachable when it starts, gone for longer than
``kafka.broker_timeout_seconds``, and paused (SIGSTOP) past the consumer's session timeout.
Each ends with nothing lost: every offset committed and the windows of a crash-free run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from kafkakit import KafkaKit, LocalBroker, assert_same_windows, make_log, probe, reference_windows

from streamrec.config import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # each starts a broker of its own


def _setup(kit: KafkaKit, n_users: int, **kafka: object) -> tuple[str, str, Path, Settings]:
    topic, group = kit.create_topic("events", 2), kit.name("group")
    config, settings = kit.write_config(kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=group,
                                                     dead_letter_topic=kit.name("dlq"), **kafka))
    return topic, group, config, settings


def test_a_service_started_before_its_broker_is_not_ready_then_serves(
        own_broker: LocalBroker, tiny_model: Path, tmp_path: Path) -> None:
    kit = KafkaKit(own_broker.bootstrap, tiny_model, tmp_path)
    topic, group, config, settings = _setup(kit, 20)
    events = make_log(n_users=20, events_per_user=(5, 10))
    kit.produce_events(topic, events)
    own_broker.stop()
    port = kit.free_port()
    service = kit.start(config, "--metrics-address", f"127.0.0.1:{port}")
    kit.wait_for(lambda: probe(port, "/readyz")[1].startswith("broker unreachable ("),
                 "/readyz to say the broker cannot be reached", timeout=60, services=[service])
    assert probe(port, "/readyz")[0] == 503 and probe(port, "/healthz")[0] == 200
    own_broker.start()
    kit.wait_caught_up(group, topic, [service])
    kit.wait_for(lambda: probe(port, "/readyz")[0] == 200, "/readyz once the broker is back", services=[service])
    assert service.stop() == 0, service.log()[-3000:]
    assert_same_windows(kit.changelog_windows(f"{group}-windows-changelog", settings),
                        reference_windows(settings, events))


def test_a_broker_gone_past_the_deadline_exits_4_and_a_restart_loses_nothing(
        own_broker: LocalBroker, tiny_model: Path, tmp_path: Path) -> None:
    kit = KafkaKit(own_broker.bootstrap, tiny_model, tmp_path)
    topic, group, config, settings = _setup(kit, 20, broker_timeout_seconds=5)
    first, later = make_log(n_users=20, events_per_user=(5, 10)), make_log(n_users=20, events_per_user=(3, 6), seed=1)
    kit.produce_events(topic, first)
    service = kit.start(config)
    kit.wait_caught_up(group, topic, [service])
    own_broker.kill()
    assert service.proc.wait(120) == 4, service.log()[-3000:]
    assert "more than kafka.broker_timeout_seconds=5" in " ".join(service.log().split())  # rich wraps it
    own_broker.start()
    kit.produce_events(topic, later)
    restarted = kit.start(config, name="restarted")
    kit.wait_caught_up(group, topic, [restarted])
    assert restarted.stop() == 0, restarted.log()[-3000:]
    assert_same_windows(kit.changelog_windows(f"{group}-windows-changelog", settings),
                        reference_windows(settings, first + later))


def test_a_broker_paused_past_the_session_timeout_is_ridden_out(
        own_broker: LocalBroker, tiny_model: Path, tmp_path: Path) -> None:
    kit = KafkaKit(own_broker.bootstrap, tiny_model, tmp_path)
    topic, group, config, settings = _setup(kit, 150)
    events = make_log(n_users=150, events_per_user=(10, 20))
    kit.produce_events(topic, events)
    service = kit.start(config)
    kit.wait_for(lambda: sum(kit.committed(group, topic).values()) > len(events) // 4, "a quarter committed",
                 services=[service])
    own_broker.signal(signal.SIGSTOP)
    time.sleep(12)  # a deliberate pause: twice the consumer's 6 s session timeout
    own_broker.signal(signal.SIGCONT)
    kit.wait_caught_up(group, topic, [service], timeout=240)
    assert service.stop() == 0, service.log()[-3000:]
    assert_same_windows(kit.changelog_windows(f"{group}-windows-changelog", settings),
                        reference_windows(settings, events))
