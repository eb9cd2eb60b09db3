"""The probes tell the truth: /readyz drops while the broker is away and comes back with it,
/healthz stays up while the loop turns, repeated client errors are summarised, and each
instance exports the consumer lag of its own partitions only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafkakit import KafkaKit, LocalBroker, make_log, probe, scrape

pytestmark = pytest.mark.kafka

OUTAGE_S = 10.0  # how long the broker stays down: long enough for librdkafka to retry many times


@pytest.mark.slow
def test_probes_during_broker_outage(own_broker: LocalBroker, tiny_model: Path, tmp_path: Path) -> None:
    """The broker is killed while the service works through a backlog (its main thread then waits
    in the producer's flush): /readyz says so within seconds, /healthz stays up, the connect errors
    are a few summarised lines, and after the restart everything is processed."""
    kit = KafkaKit(own_broker.bootstrap, tiny_model, tmp_path)
    try:
        topic = kit.create_topic("events", 2)
        port = kit.free_port()
        values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                              dead_letter_topic=kit.name("dlq"), statistics_interval_seconds=0.5)
        config, settings = kit.write_config(values)
        events = make_log(n_users=300, events_per_user=(10, 30), seed=1)
        kit.produce_events(topic, events)
        service = kit.start(config, "--metrics-address", f"127.0.0.1:{port}")
        kit.wait_for(lambda: sum(kit.committed(settings.kafka.group, topic).values()) > 0,
                     "the service to work on the backlog", 60, [service])

        own_broker.kill()
        kit.wait_for(lambda: "broker unreachable" in probe(port, "/readyz")[1], "/readyz to say the broker is gone",
                     30, [service])
        assert probe(port, "/readyz")[0] == 503 and scrape(port)[("streamrec_ready", ())] == 0
        down_since = time.monotonic()
        while time.monotonic() - down_since < OUTAGE_S:  # the outage itself; the service must stay live
            assert probe(port, "/healthz") == (200, "ok\n")
            time.sleep(0.5)

        own_broker.start()
        kit.wait_caught_up(settings.kafka.group, topic, [service], timeout=300)
        kit.wait_for(lambda: probe(port, "/readyz") == (200, "ready\n"), "/readyz 200 once caught up again",
                     60, [service])
        assert service.stop() == 0, service.log()[-3000:]
        log = service.log()
        refused = [line for line in log.splitlines() if "Connection refused" in line]
        assert 0 < len(refused) <= 30, f"{len(refused)} 'Connection refused' lines in a {OUTAGE_S:.0f}s outage"
        assert "more like" in log  # the rest were counted, not printed
        users = {rec.user_id for _, rec in kit.recommendations(settings.kafka.output_topic)}
        assert users == {e.user_id for e in events}
    finally:
        kit.cleanup()


def test_lag_series_follow_the_assignment(kit: KafkaKit) -> None:
    """With two instances, each partition's lag is exported by the one that holds it, once."""
    topic = kit.create_topic("events", 2)
    kit.produce_events(topic, make_log(n_users=30, events_per_user=(5, 10)))
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"), statistics_interval_seconds=0.5)
    ports = [kit.free_port(), kit.free_port()]
    config, settings = kit.write_config(values)
    first = kit.start(config, "--metrics-address", f"127.0.0.1:{ports[0]}", name="first")
    kit.wait_caught_up(settings.kafka.group, topic, [first])

    def lag_partitions(port: int) -> set[str]:
        if probe(port, "/healthz")[0] != 200:  # not serving yet
            return set()
        return {dict(labels)["partition"] for (name, labels) in scrape(port) if name == "streamrec_consumer_lag"}

    kit.wait_for(lambda: lag_partitions(ports[0]) == {"0", "1"}, "the first instance's lag on both partitions",
                 60, [first])
    second = kit.start(config, "--metrics-address", f"127.0.0.1:{ports[1]}", name="second")
    kit.wait_for(lambda: len(lag_partitions(ports[1])) == 1, "the second instance to take a partition", 120,
                 [first, second])
    kit.wait_for(lambda: lag_partitions(ports[0]) | lag_partitions(ports[1]) == {"0", "1"}
                 and not lag_partitions(ports[0]) & lag_partitions(ports[1]),
                 "each partition's lag exported by one instance", 30, [first, second])
    assert first.stop() == 0 and second.stop() == 0
