"""The running service exposes lag, throughput and readiness on /metrics and /readyz."""

from __future__ import annotations

import pytest
from kafkakit import KafkaKit, make_log, probe, scrape

pytestmark = pytest.mark.kafka


def test_service_metrics_lag_and_readiness(kit: KafkaKit) -> None:
    events = make_log(n_users=30, events_per_user=(5, 10))
    topic = kit.create_topic("events", 2)
    kit.produce_events(topic, events)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"), statistics_interval_seconds=0.5)
    config, settings = kit.write_config(values)
    port = kit.free_port()
    service = kit.start(config, "--metrics-address", f"127.0.0.1:{port}")
    kit.wait_caught_up(settings.kafka.group, topic, [service])

    def lags() -> dict[str, float]:
        try:
            samples = scrape(port)
        except AssertionError:
            return {}
        return {dict(labels)["partition"]: v for (name, labels), v in samples.items()
                if name == "streamrec_consumer_lag"}

    # librdkafka reports a partition's lag once it has a position there: each one shows up in
    # its own time, and the caught-up service must end with lag 0 on both
    kit.wait_for(lambda: lags() == {"0": 0, "1": 0}, "zero consumer lag on both partitions from librdkafka "
                 "statistics", timeout=60)
    kit.wait_for(lambda: probe(port, "/readyz") == (200, "ready\n"), "/readyz to answer 200 once caught up",
                 timeout=60)
    assert probe(port, "/healthz") == (200, "ok\n")
    samples = scrape(port)
    consumed = sum(v for (name, labels), v in samples.items()
                   if name == "streamrec_events_consumed_total" and ("topic", topic) in labels)
    assert consumed == len(events)
    assert {dict(labels)["partition"] for (name, labels) in samples if name == "streamrec_consumer_lag"} == {"0", "1"}
    produced = sum(v for (name, _), v in samples.items() if name == "streamrec_recommendations_produced_total")
    assert produced > 0
    assert samples[("streamrec_ready", ())] == 1
    assert service.stop() == 0, service.log()[-3000:]
