"""A batch slower than max.poll.interval.ms keeps the consumer in its group; a stop requested
while it runs waits for it and commits it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
import torch
from kafkakit import KafkaKit, make_log

from streamrec.catalog import Catalog
from streamrec.encoding import HFEncoder
from streamrec.kafka import KafkaService
from streamrec.pipeline import Pipeline

pytestmark = pytest.mark.kafka

MAX_POLL_INTERVAL_MS = 7000  # librdkafka wants it >= session.timeout.ms (6 s in these tests)


class SlowEncoder:
    """The real tiny encoder; once ``slow`` is set, its next call takes ``delay`` seconds longer."""

    def __init__(self, encoder: HFEncoder, delay: float) -> None:
        self.encoder, self.delay, self.dim = encoder, delay, encoder.dim
        self.slow = threading.Event()
        self.sleeping = threading.Event()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        if self.slow.is_set():
            self.slow.clear()
            self.sleeping.set()
            time.sleep(self.delay)
        return self.encoder.encode(texts)


def test_slow_batch_keeps_membership_and_stop_waits_for_it(kit: KafkaKit) -> None:
    topic = kit.create_topic("events", 2)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"),
                          config={"consumer.max.poll.interval.ms": str(MAX_POLL_INTERVAL_MS)})
    _, settings = kit.write_config(values)
    encoder = SlowEncoder(HFEncoder(settings.encoder), delay=MAX_POLL_INTERVAL_MS / 1000 * 1.5)
    service = KafkaService(settings, Pipeline(settings, encoder, Catalog()))
    failures: list[BaseException] = []

    def run() -> None:
        try:
            service.run(max_runtime_s=120)
        except BaseException as exc:  # surfaced by the assertions below
            failures.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    events = make_log(n_users=20, events_per_user=(3, 5), seed=4)
    kit.produce_events(topic, events[:40])
    kit.wait_caught_up(settings.kafka.group, topic)
    encoder.slow.set()
    kit.produce_events(topic, events[40:])
    assert encoder.sleeping.wait(30), "the slow batch did not start"
    time.sleep(MAX_POLL_INTERVAL_MS / 1000 + 1)  # well past max.poll.interval.ms, batch still running
    service.stop()
    runner.join(60)
    assert not runner.is_alive() and not failures, failures
    stats = service.stats
    assert stats.longest_batch_seconds > MAX_POLL_INTERVAL_MS / 1000
    assert stats.partitions_lost == 0 and stats.partitions_assigned == 2 and stats.commit_failures == 0
    assert stats.events_processed == len(events)
    assert kit.committed(settings.kafka.group, topic) == kit.end_offsets(topic)
