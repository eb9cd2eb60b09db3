"""SIGTERM under a backlog: the service finishes the batch in flight, commits, checkpoints and
exits 0 at once, leaving the backlog for the next run, which loses nothing of it."""

from __future__ import annotations

import json
import re
import time

import pytest
from kafkakit import KafkaKit, assert_same_windows, make_log, reference_windows

from streamrec.state import HEAD_FILE

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # each over 30 s on 2 cores

BATCH = 32


def test_sigterm_with_backlog(kit: KafkaKit) -> None:
    events = make_log(n_users=400, events_per_user=(40, 60), seed=11)
    assert len(events) >= 15_000
    topic = kit.create_topic("events", 2)
    kit.produce_events(topic, events)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"))
    values["batch"] = {"max_size": BATCH, "max_wait_ms": 100}
    config, settings = kit.write_config(values)
    service = kit.start(config)

    def committed() -> int:
        return sum(max(offset, 0) for offset in kit.committed(settings.kafka.group, topic).values())

    kit.wait_for(lambda: committed() >= 4 * BATCH, "the service to work through a few batches", 120, [service])
    signalled = time.time()
    assert service.stop(timeout=60) == 0, service.log()[-3000:]
    took = time.time() - signalled
    after = committed()
    # Only the batch in flight finishes (the service counts what it processed after the stop was asked).
    [after_stop] = re.findall(r"stopping: (\d+) events processed after the stop was asked", service.log())
    assert int(after_stop) <= BATCH, f"{after_stop} events were processed after SIGTERM"
    assert after < len(events), "the backlog was drained instead of left for the next run"
    assert took < settings.kafka.shutdown_timeout_seconds / 2, f"the stop took {took:.1f}s"
    assert (settings.state_dir / HEAD_FILE).stat().st_mtime >= signalled - 1  # the final checkpoint
    stats = json.loads(service.log().splitlines()[-1])["stats"]
    assert stats["events_processed"] == after  # (the first run started from nothing)

    # The next run takes the backlog from the committed offsets: nothing lost, nothing counted twice.
    service = kit.start(config)
    kit.wait_caught_up(settings.kafka.group, topic, [service], timeout=600)
    assert service.stop() == 0, service.log()[-3000:]
    assert_same_windows(kit.changelog_windows(f"{settings.kafka.group}-windows-changelog", settings),
                        reference_windows(settings, events))
