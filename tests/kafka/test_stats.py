"""The run's counters and its progress line: totals that add up, rates since the previous line (no broker)."""

from __future__ import annotations

import json
import logging

import pytest

from streamrec.kafka.stats import Progress, ServiceStats
from streamrec.pipeline import BatchResult


def test_count_batch_adds_each_delivered_batch() -> None:
    stats = ServiceStats()
    stats.count_batch(10, BatchResult([], duplicates=2, too_late=1, evicted=["x", "y"]), recommendations=6,
                      dead_lettered=1, changelog_records=8)
    stats.count_batch(5, BatchResult([], duplicates=1), recommendations=4, dead_lettered=0, changelog_records=3)
    assert (stats.batches, stats.events_processed, stats.duplicates, stats.too_late) == (2, 15, 3, 1)
    assert (stats.recommendations_produced, stats.dead_lettered, stats.changelog_records) == (10, 1, 11)
    assert stats.evicted_users == 2
    assert stats.events_consumed == 0 and stats.commits == 0  # counted where they happen, not here


def test_as_dict_is_plain_json_with_every_counter() -> None:
    stats = ServiceStats(events_consumed=3, longest_batch_seconds=1.5)
    stats.bad_messages["schema"] += 2
    stats.bad_messages["oversized"] += 1
    out = json.loads(json.dumps(stats.as_dict()))  # what `streamrec run` prints at exit
    assert out["bad_messages"] == {"schema": 2, "oversized": 1} and type(stats.as_dict()["bad_messages"]) is dict
    assert out["events_consumed"] == 3 and out["longest_batch_seconds"] == 1.5
    assert set(out) == set(ServiceStats.__dataclass_fields__)
    stats.as_dict()["bad_messages"]["schema"] = 99
    assert stats.bad_messages["schema"] == 2  # a copy, not the live counter


def test_progress_is_due_once_per_interval_and_never_at_zero() -> None:
    now = [100.0]
    progress = Progress(10, clock=lambda: now[0])
    assert not progress.due()
    now[0] = 109.9
    assert not progress.due()
    now[0] = 110.0
    assert progress.due()
    progress.line(ServiceStats(), {}, 0)  # a line resets the interval
    assert not progress.due()
    never = Progress(0, clock=lambda: now[0])
    now[0] = 1e9
    assert not never.due()


def test_the_line_gives_rates_since_the_previous_line_and_totals() -> None:
    now = [0.0]
    progress = Progress(10, clock=lambda: now[0])
    stats = ServiceStats(events_consumed=1000, events_processed=990, recommendations_produced=400, dead_lettered=10)
    now[0] = 10.0
    assert progress.line(stats, {0: 12, 1: 30}, model_version=7) == (
        "progress: 1,000 events consumed (100/s), 990 processed, 400 recommendations (40/s), 10 dead-lettered, "
        "lag 42 on 2 partitions, model v7")
    stats.events_consumed, stats.recommendations_produced = 1600, 500
    now[0] = 30.0
    line = progress.line(stats, {}, model_version=8)
    assert "1,600 events consumed (30/s)" in line and "500 recommendations (5/s)" in line  # 600 and 100 in 20 s
    assert line.endswith("lag 0 on 0 partitions, model v8")


def test_log_writes_the_line_to_the_progress_logger_unless_disabled(caplog: pytest.LogCaptureFixture) -> None:
    stats = ServiceStats(events_consumed=5)
    with caplog.at_level(logging.INFO, logger="streamrec.progress"):
        Progress(0).log(stats, {0: 1}, 1)
        assert caplog.records == []
        Progress(30).log(stats, {0: 1}, 1)
    [record] = caplog.records
    assert record.name == "streamrec.progress" and record.levelno == logging.INFO
    assert record.getMessage().startswith("progress: 5 events consumed")
