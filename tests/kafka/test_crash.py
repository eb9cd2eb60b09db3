"""kill -9 the service at random points, restart it each time, and check what came out.

Claims checked (see streamrec.kafka.service):

* no input event is lost: each event is followed by a recommendation for its user whose source
  (partition, offset) covers it, i.e. same partition and offset >= the event's;
* duplicates are bounded. A recommendation is a duplicate when an earlier recommendation for the
  same user already covered its source offset. A kill can only leave one batch uncommitted
  (batches are sequential and each is committed before the next starts); redoing it publishes
  at most one recommendation per user in it, so at most ``batch.max_size`` per kill. Hence
  duplicates <= kills * batch.max_size. Under exactly-once (read_committed) there are none;
* windows after the run equal those of a crash-free run: the final changelog record per user,
  restored, equals a WindowStore fed the same events once each, in order.

Kills are spread over the run: kill k comes once the committed offsets pass a random point of
the k-th slice of the log (plus up to 0.3 s), so it lands mid-processing, at any point of a batch
(while the pipeline runs, while producing, between the flushes, around the commit), on a fast or
a slow machine alike. The restarts reuse the member's ``group.instance.id`` (static membership)
so the group does not wait a session timeout for the dead member (restarts with a new member id
are covered by the rebalance tests).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest
from kafkakit import KafkaKit, assert_same_windows, make_log, reference_windows

from streamrec.events import Event

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # each over 30 s on 2 cores


def _run_with_kills(kit: KafkaKit, rng: random.Random, events: list[Event], kills: int, *args: str,
                    **kafka: object) -> tuple[int, int, int]:
    """Produce ``events``, run with ``kills`` kill -9s, finish cleanly; returns (recs, duplicates, bound)."""
    topic = kit.create_topic("events", 3)
    where = kit.produce_events(topic, events)
    output = kit.create_topic("recs", 3)
    group = kit.name("group")
    values = kit.settings(input_topic=topic, output_topic=output, group=group, dead_letter_topic=kit.name("dlq"),
                          config={"consumer.group.instance.id": kit.name("member")}, **kafka)
    values["kafka"]["checkpoint_interval_seconds"] = 2
    values["batch"]["max_size"] = 32  # more batch boundaries to crash at, a tighter duplicate bound
    config, settings = kit.write_config(values)
    for kill in range(kills):
        # Kill k lands at a random point of the k-th slice of the log, whatever the machine's speed.
        target = len(events) * (kill + rng.uniform(0.3, 0.9)) / (kills + 1)
        t0 = time.monotonic()
        service = kit.start(config, *args, name=f"killed{kill}")
        kit.wait_for(lambda t=target: sum(max(0, o) for o in kit.committed(group, topic).values()) >= t,  # type: ignore[misc]
                     f"the service to commit {target:.0f} events", 120, [service])
        time.sleep(rng.uniform(0.0, 0.3))
        service.kill()
        print(f"\n[crash] kill {kill} at {time.monotonic() - t0:.1f}s, past {target:.0f} of {len(events)} events",
              end="")
        assert kit.committed(group, topic) != kit.end_offsets(topic), f"the run finished before kill {kill}"
    t0 = time.monotonic()
    final = kit.start(config, *args, name="final")
    kit.wait_caught_up(group, topic, [final], timeout=240)
    t1 = time.monotonic()
    assert final.stop() == 0, final.log()[-3000:]
    print(f"\n[crash] final run: caught up after {t1 - t0:.1f}s, stopped at {time.monotonic() - t0:.1f}s", end="")

    # Coverage and duplicates, per user, in output order (a user's recommendations share a partition).
    last_event: dict[str, tuple[int, int]] = {}
    for event, (partition, offset) in zip(events, where, strict=True):
        last_event[event.user_id] = (partition, offset)
    covered: dict[str, int] = defaultdict(lambda: -1)
    recs = kit.recommendations(output)
    duplicates = 0
    for _, rec in recs:
        partition, offset = rec.source["partition"], rec.source["offset"]
        assert partition == last_event[rec.user_id][0]
        if offset <= covered[rec.user_id]:
            duplicates += 1
        covered[rec.user_id] = max(covered[rec.user_id], offset)
    lost = {user: (offset, covered[user]) for user, (_, offset) in last_event.items() if covered[user] < offset}
    assert not lost, f"events not followed by a recommendation (user: last offset, covered): {lost}"
    assert kit.committed(group, topic) == kit.end_offsets(topic)
    assert_same_windows(kit.changelog_windows(f"{group}-windows-changelog", settings),
                        reference_windows(settings, events))
    return len(recs), duplicates, kills * settings.batch.max_size


def test_kill_9_at_least_once(kit: KafkaKit, rng: random.Random) -> None:
    events = make_log(n_users=700, events_per_user=(20, 40))
    assert len(events) >= 20_000
    recs, duplicates, bound = _run_with_kills(kit, rng, events, kills=5)
    print(f"\n[crash] at-least-once: {len(events)} events, 5 kills, {recs} recommendations, "
          f"{duplicates} duplicates (bound {bound})")
    assert duplicates <= bound


def test_kill_9_exactly_once(kit: KafkaKit, rng: random.Random) -> None:
    events = make_log(n_users=150, events_per_user=(20, 40), seed=3)
    recs, duplicates, _ = _run_with_kills(kit, rng, events, 3, "--exactly-once",
                                          transactional_id=kit.name("txn"))
    print(f"\n[crash] exactly-once: {len(events)} events, 3 kills, {recs} recommendations, {duplicates} duplicates")
    assert duplicates == 0
