"""Two instances in one group: partitions, and the windows of their users, move between them."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
from kafkakit import KafkaKit, ServiceProcess, assert_same_windows, make_log, reference_windows

pytestmark = pytest.mark.kafka


def _assignments(service: ServiceProcess) -> list[tuple[str, list[int]]]:
    """('assigned' | 'revoked' | 'lost', partitions) in log order."""
    found = re.findall(r"(assigned|revoked|lost) \S+ partitions \[([\d, ]*)\]", service.log())
    return [(kind, [int(p) for p in parts.split(",") if p.strip()]) for kind, parts in found]


def _owned(service: ServiceProcess) -> set[int]:
    owned: set[int] = set()
    for kind, partitions in _assignments(service):
        owned = owned | set(partitions) if kind == "assigned" else owned - set(partitions)
    return owned


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

    first = kit.start(config, name="first")
    kit.wait_for(lambda: len(_owned(first)) == 4, "the first instance to own all 4 partitions", 60, [first])
    second = kit.start(config, name="second")
    kit.wait_for(lambda: bool(_owned(second)) and len(_owned(first) | _owned(second)) == 4
                 and not _owned(first) & _owned(second), "a cooperative split of the partitions", 90,
                 [first, second])
    kit.wait_caught_up(group, topic, [first, second])
    moving = _owned(first)
    assert moving and _owned(second), "both instances must be consuming before one stops"
    # Cooperative: the first instance gave up partitions without revoking the ones it kept.
    assert not any(kind == "revoked" and set(p) & moving for kind, p in _assignments(first))

    assert first.stop() == 0, first.log()[-3000:]
    kit.wait_for(lambda: _owned(second) == {0, 1, 2, 3}, "the survivor to take over", 60, [second])
    assert not re.search(r"^\S+ \S+ WARNING .*lost", second.log(), re.M)
    where += kit.produce_events(topic, after)
    kit.wait_caught_up(group, topic, [second])
    assert second.stop() == 0, second.log()[-3000:]

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
    paused = kit.start(config, name="paused")
    kit.wait_caught_up(group, topic, [paused])

    paused.proc.send_signal(signal.SIGSTOP)
    try:
        other = kit.start(config, name="other")
        kit.wait_for(lambda: _owned(other) == {0, 1}, "the other instance to get both partitions", 60, [other])
        kit.produce_events(topic, thirds[1])
        kit.wait_caught_up(group, topic, [other])
    finally:
        paused.proc.send_signal(signal.SIGCONT)
    kit.wait_for(lambda: any(kind == "lost" for kind, _ in _assignments(paused)), "the paused one to see the loss",
                 60, [paused, other])
    kit.wait_for(lambda: bool(_owned(paused)) and bool(_owned(other)), "both to own partitions again", 60,
                 [paused, other])
    kit.produce_events(topic, thirds[2])
    kit.wait_caught_up(group, topic, [paused, other])
    assert paused.stop() == 0 and other.stop() == 0
    stats = json.loads(paused.log().splitlines()[-1])["stats"]
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
