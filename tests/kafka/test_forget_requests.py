"""Forgetting a user through Kafka: ``streamrec forget`` sends the request, the running service
drops the user and writes tombstones, and neither a kill -9 nor a restart brings the user back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafkakit import REPO, KafkaKit, make_log, scrape

from streamrec.events import Event

pytestmark = [pytest.mark.kafka, pytest.mark.slow]  # over 30 s on 2 cores


def _forget(config: Path, *users: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "streamrec", "forget", *users, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def test_a_forgotten_user_gets_tombstones_and_stays_gone_after_a_kill_and_a_restart(kit: KafkaKit) -> None:
    events = make_log(n_users=12, events_per_user=(5, 8))
    topic = kit.create_topic("events", 2)
    kit.produce_events(topic, events)
    output, group = kit.name("recs"), kit.name("group")
    config, settings = kit.write_config(kit.settings(input_topic=topic, output_topic=output, group=group,
                                                     dead_letter_topic=kit.name("dlq")))
    changelog = f"{group}-windows-changelog"
    port = kit.free_port()
    service = kit.start(config, "--metrics-address", f"127.0.0.1:{port}")
    kit.wait_caught_up(group, topic, [service])
    target, other = events[0].user_id, events[-1].user_id
    assert target != other
    kit.wait_for(lambda: target in kit.changelog_windows(changelog, settings), f"{target}'s window in the changelog")
    kept = kit.changelog_windows(changelog, settings).window(other)

    done = _forget(config, target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"sent forget requests for 1 users to 2 partitions of {topic}" in " ".join(done.stderr.split())
    kit.wait_for(lambda: scrape(port).get(("streamrec_users_forgotten_total", ())) == 1,
                 "streamrec_users_forgotten_total to count the user", timeout=60, services=[service])
    kit.wait_caught_up(group, topic, [service])  # the requests are committed like events
    windows = kit.changelog_windows(changelog, settings)
    assert target not in windows and windows.window(other) == kept
    latest = {record.key: record for record in kit.read_all(output)}
    assert latest[target.encode()].value is None  # the recommendation's tombstone is the user's last record
    assert latest[other.encode()].value is not None

    service.kill()  # no graceful stop: the tombstones are already written and committed
    newest = max(e.timestamp for e in events)
    comeback = Event(target, events[1].item_id, "view", newest + 1000, event_id="after-forget")
    kit.produce_events(topic, [comeback])
    restarted = kit.start(config, name="restarted")
    kit.wait_caught_up(group, topic, [restarted])
    kit.wait_for(lambda: target in kit.changelog_windows(changelog, settings), "the user's new window",
                 services=[restarted])
    windows = kit.changelog_windows(changelog, settings)
    assert [e.event_id for e in windows.window(target)] == ["after-forget"]  # only what came after
    assert windows.window(other) == kept
    assert restarted.stop() == 0, restarted.log()[-3000:]
    assert "after-forget" not in restarted.log()  # no event payloads in the log
