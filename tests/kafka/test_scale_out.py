"""Scaled out: one trainer and N scorers (``kafka.role``) learn one model through Kafka alone.

Claims checked against the real broker, every instance a ``streamrec run`` process:

* three scorers and a trainer recommend as well as one instance on the same planted log
  (prequential hit@10 from the output topic, within a margin);
* a scorer killed with kill -9 and a fourth joining mid-stream lose no event (each event is
  followed by a recommendation that covers it), and the newcomer serves the current model at
  once (every recommendation after it joined carries at least the version published before);
* a trainer killed with kill -9 leaves the scorers serving, and the restarted trainer resumes
  from its last snapshot without loss (its final windows equal a crash-free run's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pytest
from kafkakit import KafkaKit, ServiceProcess, assert_same_windows, make_log, reference_windows, scrape

from streamrec.config import Settings
from streamrec.events import Event
from streamrec.kafka.model_topic import ModelReader
from streamrec.state import WINDOWS_FILE
from streamrec.windows import WindowStore

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # several processes each: over 30 s on 2 cores
PARTITIONS = 6


class Instance:
    """One ``streamrec run`` with its own /metrics."""

    def __init__(self, kit: KafkaKit, config: Path, role: str, name: str) -> None:
        self.port = kit.free_port()
        self.process = kit.start(config, "--role", role, "--metrics-address", f"127.0.0.1:{self.port}", name=name)

    def owned(self) -> set[int]:
        try:
            samples = scrape(self.port)
        except AssertionError:
            return set()
        return {int(dict(labels)["partition"]) for (name, labels), value in samples.items()
                if name == "streamrec_partition_assigned" and value == 1}

    def version(self) -> float:
        try:
            return scrape(self.port).get(("streamrec_model_version", ()), -1.0)
        except AssertionError:  # not serving yet
            return -1.0


class Deployment:
    def __init__(self, kit: KafkaKit, name: str = "") -> None:
        self.kit = kit
        self.topic = kit.create_topic(f"{name}events", PARTITIONS)
        self.output = kit.create_topic(f"{name}recs", PARTITIONS)
        self.group = kit.name(f"{name}group")
        values = kit.settings(input_topic=self.topic, output_topic=self.output, group=self.group,
                              dead_letter_topic=kit.name(f"{name}dlq"), model_interval_seconds=0.5)
        values["retrieval"]["k"] = 10
        values["batch"]["max_size"] = 32
        self.config, self.settings = kit.write_config(values)
        self.where: list[tuple[int, int]] = []

    def produce(self, events: Sequence[Event]) -> None:
        self.where += self.kit.produce_events(self.topic, events)

    def start(self, role: str, name: str) -> Instance:
        return Instance(self.kit, self.config, role, name)

    def processes(self, *instances: Instance) -> list[ServiceProcess]:
        return [i.process for i in instances if i.process.alive()]

    def trained_to_end(self, trainer: Instance, scorers: Sequence[Instance]) -> float:
        """Wait until the trainer has published a snapshot of everything and every scorer serves it."""
        kit, ends = self.kit, self.kit.end_offsets(self.topic)
        kit.wait_for(lambda: kit.committed(f"{self.group}-trainer", self.topic) == ends,
                     "the trainer to publish a snapshot of every event", 120, self.processes(trainer, *scorers))
        version = trainer.version()
        kit.wait_for(lambda: all(s.version() >= version for s in scorers), f"every scorer to serve v{version:.0f}",
                     60, self.processes(trainer, *scorers))
        return version


def _shared(scorers: Sequence[Instance]) -> bool:
    owned = [s.owned() for s in scorers]
    return all(owned) and len(set().union(*owned)) == PARTITIONS


def _hit_rate(kit: KafkaKit, output: str, events: Sequence[Event], where: Sequence[tuple[int, int]],
              scored: range) -> float:
    """Prequential hit@10 from the output topic: for each scored event, the user's newest
    recommendation made before it (source offset below the event's) holds its item."""
    shown: dict[str, list[tuple[int, list[str]]]] = defaultdict(list)
    for _, rec in kit.recommendations(output):
        shown[rec.user_id].append((rec.source["offset"], [item.item_id for item in rec.items]))
    hits = total = 0
    for i in scored:
        event, (_, offset) = events[i], where[i]
        before = [items for source, items in shown[event.user_id] if source < offset]
        if before:
            total += 1
            hits += event.item_id in before[-1]
    assert total > len(scored) // 2, "most scored events must follow a recommendation"
    return hits / total


def test_three_instances_and_a_trainer_recommend_as_well_as_one_instance(kit: KafkaKit) -> None:
    events = make_log(n_users=150, events_per_user=(10, 20), seed=11)
    split = int(len(events) * 0.6)
    rates = {}
    for setup in ("single", "scaled"):
        deployment = Deployment(kit, setup)
        if setup == "single":
            deployment.produce(events[:split])
            single = deployment.start("single", "single")
            kit.wait_caught_up(deployment.group, deployment.topic, [single.process])
            deployment.produce(events[split:])
            kit.wait_caught_up(deployment.group, deployment.topic, [single.process])
        else:
            trainer = deployment.start("trainer", "trainer")
            scorers = [deployment.start("scorer", f"scorer{n}") for n in range(3)]
            # the group settles before the events flow: a commit made during a rebalance may not take
            kit.wait_for(partial(_shared, scorers), "the three scorers to share the partitions", 120,
                         deployment.processes(trainer, *scorers))
            deployment.produce(events[:split])
            kit.wait_caught_up(deployment.group, deployment.topic, deployment.processes(trainer, *scorers), 180)
            deployment.trained_to_end(trainer, scorers)
            deployment.produce(events[split:])
            kit.wait_caught_up(deployment.group, deployment.topic, deployment.processes(trainer, *scorers), 180)
        rates[setup] = _hit_rate(kit, deployment.output, events, deployment.where, range(split, len(events)))
    print(f"\n[scale-out] hit@10 after the split: one instance {rates['single']:.3f}, "
          f"a trainer and three scorers {rates['scaled']:.3f}")
    assert rates["single"] > 0.2  # the planted structure is learnable
    assert rates["scaled"] >= rates["single"] - 0.07  # about three standard errors of the difference


def test_a_scorer_killed_and_one_joining_lose_no_event_and_the_newcomer_serves_the_current_model(
        kit: KafkaKit) -> None:
    events = make_log(n_users=200, events_per_user=(10, 20), seed=12)
    half = len(events) // 2
    deployment = Deployment(kit)
    deployment.produce(events[:half])
    trainer = deployment.start("trainer", "trainer")
    scorers = [deployment.start("scorer", f"scorer{n}") for n in range(3)]
    kit.wait_caught_up(deployment.group, deployment.topic, deployment.processes(trainer, *scorers), 180)
    version = deployment.trained_to_end(trainer, scorers)
    assert version > 0
    scorers[1].process.kill()
    newcomer = deployment.start("scorer", "newcomer")
    kit.wait_for(lambda: newcomer.version() >= version, "the newcomer to load the current model", 90,
                 deployment.processes(trainer, newcomer))
    before_join = {rec.user_id for _, rec in kit.recommendations(deployment.output)}
    deployment.produce(events[half:])
    live = [trainer, scorers[0], scorers[2], newcomer]
    kit.wait_caught_up(deployment.group, deployment.topic, deployment.processes(*live), 180)

    first_late: dict[int, int] = {}  # partition -> offset of its first event of the second half
    for partition, offset in deployment.where[half:]:
        first_late.setdefault(partition, offset)
    covered: dict[str, int] = defaultdict(lambda: -1)
    late = []
    for record, rec in kit.recommendations(deployment.output):
        covered[rec.user_id] = max(covered[rec.user_id], rec.source["offset"])
        if rec.source["offset"] >= first_late.get(record.partition, 1 << 62):
            late.append(rec)
    last = {e.user_id: offset for e, (_, offset) in zip(events, deployment.where, strict=True)}
    lost = {user: (offset, covered[user]) for user, offset in last.items() if covered[user] < offset}
    assert not lost, f"events not followed by a recommendation (user: last offset, covered): {lost}"
    assert late and all(rec.model_version >= version for rec in late), \
        "a recommendation after the join was made with a model older than the one published before it"
    assert before_join  # the first half was served too
    published, served = scrape(trainer.port), scrape(newcomer.port)
    assert published[("streamrec_model_snapshots_total", (("action", "published"),))] >= 2
    assert published[("streamrec_model_bytes_total", (("direction", "written"),))] > 0
    assert served[("streamrec_model_snapshots_total", (("action", "loaded"),))] >= 1
    assert served[("streamrec_model_bytes_total", (("direction", "read"),))] > 0
    assert served[("streamrec_model_delay_seconds_count", ())] >= 1  # a snapshot with events new to it
    for instance in (trainer, scorers[0], scorers[2], newcomer):
        assert instance.process.stop() == 0, instance.process.log()[-3000:]


def _final_windows(settings: Settings) -> WindowStore:
    reader = ModelReader(settings)
    try:
        assert reader.read_to_end() is not None
        snapshot = reader.take_files()[WINDOWS_FILE]
    finally:
        reader.close()
    w = settings.window
    store = WindowStore(max_events=w.max_events, horizon_ms=int(w.horizon_seconds * 1000), max_users=w.max_users,
                        max_lateness_ms=int(w.max_lateness_seconds * 1000), max_seen_items=w.max_seen_items,
                        remember_actions=settings.retrieval.exclude_actions)
    store.restore(snapshot)
    return store


def test_a_trainer_killed_leaves_the_scorers_serving_and_resumes_without_loss(kit: KafkaKit) -> None:
    events = make_log(n_users=300, events_per_user=(15, 30), seed=13)
    deployment = Deployment(kit)
    deployment.produce(events)
    trainer = deployment.start("trainer", "trainer")
    scorers = [deployment.start("scorer", f"scorer{n}") for n in range(2)]
    trained = f"{deployment.group}-trainer"
    kit.wait_for(lambda: sum(kit.committed(trained, deployment.topic).values()) >= len(events) // 3,
                 "the trainer to snapshot a third of the log", 180, deployment.processes(trainer, *scorers))
    trainer.process.kill()
    assert kit.committed(trained, deployment.topic) != kit.end_offsets(deployment.topic), "finished before the kill"
    killed_at = max(s.version() for s in scorers)
    kit.wait_caught_up(deployment.group, deployment.topic, deployment.processes(*scorers), 180)  # still serving
    assert all(s.process.alive() for s in scorers)

    restarted = deployment.start("trainer", "restarted")
    kit.wait_for(lambda: kit.committed(trained, deployment.topic) == kit.end_offsets(deployment.topic),
                 "the restarted trainer to learn the rest", 180, deployment.processes(restarted, *scorers))
    assert "resumed from model v" in restarted.process.log()
    final = restarted.version()
    assert final > killed_at
    assert_same_windows(_final_windows(deployment.settings), reference_windows(deployment.settings, events))
    kit.wait_for(lambda: all(s.version() >= final for s in scorers), "the scorers to serve the final model", 60,
                 deployment.processes(restarted, *scorers))
    for instance in (restarted, *scorers):
        assert instance.process.stop() == 0, instance.process.log()[-3000:]
