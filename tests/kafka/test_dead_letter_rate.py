"""A partition whose every message is rejected raises an alarm; a few bad ones do not."""

from __future__ import annotations

import json
import logging

import pytest
from confluent_kafka import Message

from streamrec.events import ActionVocabulary
from streamrec.kafka.batch import Batch, Received
from streamrec.kafka.dead_letter_rate import DeadLetterRate
from streamrec.metrics import Metrics


def _ratios(metrics: Metrics) -> dict[str, float]:
    return {s.labels["partition"]: s.value for s in metrics.dead_letter_ratio.collect()[0].samples}


def test_all_rejected_is_an_alarm_some_rejected_is_not(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    rate = DeadLetterRate("events", metrics, window=100, min_messages=20)
    with caplog.at_level(logging.WARNING):
        assert not rate.observe(0, good=60, bad=["schema (field 'timestamp')"] * 3)
        assert not rate.observe(1, good=0, bad=["undecodable"] * 10)  # too few to tell yet
        assert rate.observe(1, good=0, bad=["undecodable"] * 15)
        assert rate.observe(1, good=0, bad=["undecodable"] * 15)  # logged once
    assert _ratios(metrics) == {"0": pytest.approx(3 / 63), "1": 1.0}
    alarms = [r.getMessage() for r in caplog.records if "every one of the last" in r.getMessage()]
    assert len(alarms) == 1 and "events[1]" in alarms[0] and "e.g. undecodable" in alarms[0]
    with caplog.at_level(logging.WARNING):
        assert not rate.observe(1, good=5, bad=[])
    assert "events[1] has valid events again" in caplog.text
    rate.forget([1])
    assert set(_ratios(metrics)) == {"0"}


def test_the_window_forgets_old_rejections() -> None:
    rate = DeadLetterRate("events", window=50, min_messages=20)
    rate.observe(0, good=0, bad=["schema"] * 50)
    assert rate.ratio(0) == 1.0
    rate.observe(0, good=40, bad=[])
    assert rate.ratio(0) == pytest.approx(10 / 50)


def test_the_alarm_names_the_reason_and_field_but_never_the_messages_content(
        caplog: pytest.LogCaptureFixture) -> None:
    secret = "secret-user-42"
    messages = [Message(topic="events", partition=0, offset=n, key=secret.encode(),
                        value=json.dumps({"user_id": secret, "item_id": "i", "action": "view",
                                          "timestamp": f"{secret}-{n}"}).encode()) for n in range(25)]
    messages += [Message(topic="events", partition=1, offset=n, key=b"k", value=secret.encode()) for n in range(25)]
    batch = Batch.assemble([Received(m, 0) for m in messages], ActionVocabulary.for_domain("ecommerce"), "auto",
                           1024)
    assert len(batch.bad) == 50 and secret in str(batch.bad[0].error)  # the dead letter keeps the details
    with caplog.at_level(logging.DEBUG):
        DeadLetterRate("events", window=100, min_messages=20).observe_batch(batch)
    alarms = [r.getMessage() for r in caplog.records if "every one of the last" in r.getMessage()]
    assert len(alarms) == 2 and "e.g. schema (field 'timestamp')" in alarms[0] and "e.g. undecodable" in alarms[1]
    assert secret not in caplog.text
