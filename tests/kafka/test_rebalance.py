"""Two instances in one group: partitions, and the windows of their users, move between them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from kafkakit import KafkaKit, assert_same_windows, make_log, probe, reference_windows
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.kafka


class Member:
    """One instance of the group, asked what it holds through its own /metrics (the
    ``streamrec_partition_assigned`` gauge and ``streamrec_partition_changes_total`` counter)."""

    def __init__(self, kit: KafkaKit, config: Path, name: str) -> None:
        self.port = kit.free_port()
        self.process = kit.start(config, "--metrics-address", f"127.0.0.1:{self.port}", name=name)

    def _samples(self, name: str) -> dict[str, float]:
        status, text = probe(self.port, "/metrics")
        if status != 200:  # not serving yet
            return {}
        label = "partition" if name == "streamrec_partition_assigned" else "change"
        return {s.labels[label]: s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == name}

    def owned(self) -> set[int]:
        return {int(p) for p, value in self._samples("streamrec_partition_assigned").items() if value == 1}

    def changes(self) -> dict[str, float]:
        """Partitions assigned, revoked and lost so far."""
        return self._samples("streamrec_partition_changes_total")


def test_partitions_and_windows_move_on_sigterm(kit: KafkaKit) -> None:
    events = make_log(n_users=120, events_per_user=(10, 20), seed=5)
    before, after = events[: len(events) // 2], events[len(events) // 2:]
    topic = kit.create_topic("events", 4)
    group = kit.name("group")
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=group,
                          dead_letter_topic=kit.name("dlq"))
    values["window"]["max_events"] = 40  # long enough that many windows span the move
    config, settings = kit.write_config(values)
    where = kit.produce_events(topic, before)

    first = Member(kit, config, "first")
    kit.wait_for(lambda: len(first.owned()) == 4, "the first instance to own all 4 partitions", 60, [first.process])
    second = Member(kit, config, "second")
    both = [first.process, second.process]
    kit.wait_for(lambda: bool(second.owned()) and len(first.owned() | second.owned()) == 4
                 and not first.owned() & second.owned(), "a cooperative split of the partitions", 90, both)
    kit.wait_caught_up(group, topic, both)
    kept, given = first.owned(), second.owned()
    assert kept and given, "both instances must be consuming before one stops"
    # Cooperative: the first instance gave up partitions without revoking the ones it kept.
    assert first.changes() == {"assigned": 4, "revoked": len(given)}

    assert first.process.stop() == 0, first.process.log()[-3000:]
    kit.wait_for(lambda: second.owned() == {0, 1, 2, 3}, "the survivor to take over", 60, [second.process])
    assert "lost" not in second.changes()
    where += kit.produce_events(topic, after)
    kit.wait_caught_up(group, topic, [second.process])
    assert second.process.stop() == 0, second.process.log()[-3000:]
    moving = kept

    # Users of the moved partitions whose windows hold events from before the move (processed by
    # the first instance) and after it (by the survivor): without restoring from the changelog the
    # survivor would hold only the later ones, and the windows would differ from the reference.
    partition_of = {e.user_id: p for e, (p, _) in zip(events, where, strict=True)}
    moved = {user for user, p in partition_of.items() if p in moving}
    expected = reference_windows(settings, events)
    before_ids = {e.event_id for e in before}
    straddling = {user for user in moved
                  if {e.event_id in before_ids for e in expected.window(user)} == {True, False}}
    assert straddling, "the test needs moved users whose windows span the move"
    assert_same_windows(kit.changelog_windows(f"{group}-windows-changelog", settings), expected)
    print(f"\n[rebalance] {len(moved)} users moved with partitions {sorted(moving)}; "
          f"{len(straddling)} of their windows span the move")


def test_a_member_that_lost_its_partitions_drops_them_and_rejoins(kit: KafkaKit) -> None:
    """SIGSTOP one instance past its session timeout: the group gives its partitions to the other.
    On SIGCONT it learns they were lost (on_lost), drops those users without committing, rejoins,
    and whatever it gets back is restored from the changelog the other instance kept writing."""
    events = make_log(n_users=90, events_per_user=(10, 20), seed=6)
    thirds = [events[: len(events) // 3], events[len(events) // 3: 2 * len(events) // 3],
              events[2 * len(events) // 3:]]
    topic = kit.create_topic("events", 2)
    group = kit.name("group")
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=group,
                          dead_letter_topic=kit.name("dlq"))
    values["window"]["max_events"] = 40
    config, settings = kit.write_config(values)
    kit.produce_events(topic, thirds[0])
    paused = Member(kit, config, "paused")
    kit.wait_caught_up(group, topic, [paused.process])

    paused.process.proc.send_signal(signal.SIGSTOP)  # its endpoint too: not asked until SIGCONT
    try:
        other = Member(kit, config, "other")
        kit.wait_for(lambda: other.owned() == {0, 1}, "the other instance to get both partitions", 60,
                     [other.process])
        kit.produce_events(topic, thirds[1])
        kit.wait_caught_up(group, topic, [other.process])
    finally:
        paused.process.proc.send_signal(signal.SIGCONT)
    both = [paused.process, other.process]
    kit.wait_for(lambda: paused.changes().get("lost") == 2, "the paused one to see the loss", 60, both)
    kit.wait_for(lambda: bool(paused.owned()) and bool(other.owned()), "both to own partitions again", 60, both)
    kit.produce_events(topic, thirds[2])
    kit.wait_caught_up(group, topic, both)
    assert paused.process.stop() == 0 and other.process.stop() == 0
    stats = json.loads(paused.process.log().splitlines()[-1])["stats"]
    assert stats["partitions_lost"] == 2 and stats["commit_failures"] == 0
    assert_same_windows(kit.changelog_windows(f"{group}-windows-changelog", settings),
                        reference_windows(settings, events))


SESSION_TIMEOUT_S = 60  # what a restarted dynamic member would wait out (librdkafka's default is 45)


@pytest.mark.slow
def test_static_membership_restart(kit: KafkaKit) -> None:
    """A static member (kafka.instance_id) killed with -9 and restarted takes its partitions back at
    once: fresh recommendations flow again in far less than the session timeout it would otherwise
    wait out, with its windows restored."""
    events = make_log(n_users=40, events_per_user=(6, 12), seed=8)
    before, after = events[: len(events) // 2], events[len(events) // 2:]
    topic = kit.create_topic("events", 2)
    values = kit.settings(input_topic=topic, output_topic=kit.name("recs"), group=kit.name("group"),
                          dead_letter_topic=kit.name("dlq"), instance_id="recs-{hostname}",
                          config={"consumer.session.timeout.ms": str(SESSION_TIMEOUT_S * 1000)})
    config, settings = kit.write_config(values)
    kit.produce_events(topic, before)
    service = kit.start(config)
    kit.wait_caught_up(settings.kafka.group, topic, [service])

    service.kill()
    killed = time.monotonic()
    service = kit.start(config)
    kit.produce_events(topic, after)
    kit.wait_caught_up(settings.kafka.group, topic, [service], timeout=SESSION_TIMEOUT_S * 2)
    took = time.monotonic() - killed
    assert took < SESSION_TIMEOUT_S / 2, f"the restarted static member took {took:.0f}s to catch up"  # 14 s in CI
    assert service.stop() == 0, service.log()[-3000:]
    assert_same_windows(kit.changelog_windows(f"{settings.kafka.group}-windows-changelog", settings),
                        reference_windows(settings, events))
