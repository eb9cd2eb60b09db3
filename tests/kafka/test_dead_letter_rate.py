"""A partition whose every message is rejected raises an alarm; a few bad ones do not."""

from __future__ import annotations

import logging

import pytest

from streamrec.kafka.dead_letter_rate import DeadLetterRate
from streamrec.metrics import Metrics


def _ratios(metrics: Metrics) -> dict[str, float]:
    return {s.labels["partition"]: s.value for s in metrics.dead_letter_ratio.collect()[0].samples}


def test_all_rejected_is_an_alarm_some_rejected_is_not(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    rate = DeadLetterRate("events", metrics, window=100, min_messages=20)
    with caplog.at_level(logging.WARNING):
        assert not rate.observe(0, good=60, bad=["schema: field 'timestamp'"] * 3)
        assert not rate.observe(1, good=0, bad=["undecodable: x"] * 10)  # too few to tell yet
        assert rate.observe(1, good=0, bad=["undecodable: not a valid msgpack event"] * 15)
        assert rate.observe(1, good=0, bad=["undecodable: not a valid msgpack event"] * 15)  # logged once
    assert _ratios(metrics) == {"0": pytest.approx(3 / 63), "1": 1.0}
    alarms = [r.getMessage() for r in caplog.records if "every one of the last" in r.getMessage()]
    assert len(alarms) == 1 and "events[1]" in alarms[0] and "not a valid msgpack event" in alarms[0]
    with caplog.at_level(logging.WARNING):
        assert not rate.observe(1, good=5, bad=[])
    assert "events[1] has valid events again" in caplog.text
    rate.forget([1])
    assert set(_ratios(metrics)) == {"0"}


def test_the_window_forgets_old_rejections() -> None:
    rate = DeadLetterRate("events", window=50, min_messages=20)
    rate.observe(0, good=0, bad=["schema: x"] * 50)
    assert rate.ratio(0) == 1.0
    rate.observe(0, good=40, bad=[])
    assert rate.ratio(0) == pytest.approx(10 / 50)
