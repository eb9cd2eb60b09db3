"""librdkafka's repeated log lines are collapsed into one line and a counted summary."""

from __future__ import annotations

import logging

import pytest

from streamrec.kafka.client_logs import LOGGER_NAME, RepeatFilter, client_logger, flush_repeats


def _refused(logger: logging.Logger, client: str, ms: int) -> None:
    """What librdkafka's log callback sends through confluent-kafka's ``logger``."""
    logger.error("%s [%s] %s", "FAIL", client, f"127.0.0.1:9092/1: Connect failed: Connection refused (after {ms}ms)")


def test_repeats_within_the_interval_become_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("test.repeats")
    repeats = RepeatFilter(30, clock=lambda: now[0])
    logger.addFilter(repeats)
    try:
        with caplog.at_level(logging.INFO, logger="test.repeats"):
            for n in range(100):  # ten a second for ten seconds, from two clients
                now[0] = n / 10
                _refused(logger, "rdkafka#consumer-1", n)
                _refused(logger, "rdkafka#producer-2", n)
            logger.info("progress: %d events", 5)  # below WARNING: never collapsed
            logger.info("progress: %d events", 6)
            now[0] = 31.0
            repeats.flush(logger)
    finally:
        logger.removeFilter(repeats)
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "Connection refused" in line]) == 4
    summaries = [line for line in lines if "99 more like this in the last 31s, not logged, the last: " in line]
    assert len(summaries) == 2 and summaries[0].endswith("Connection refused (after 99ms)")
    assert sum(line.startswith("progress") for line in lines) == 2


def test_a_repeat_after_the_interval_carries_the_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    repeats = RepeatFilter(5, clock=lambda: now[0])
    logger = logging.getLogger("test.repeats.count")
    logger.addFilter(repeats)
    try:
        with caplog.at_level(logging.WARNING, logger="test.repeats.count"):
            for n in range(12):  # one a second
                now[0] = float(n)
                logger.warning("broker %d down", n)
    finally:
        logger.removeFilter(repeats)
    assert [r.getMessage() for r in caplog.records] == [
        "broker 0 down", "broker 5 down (4 more like it in the last 5s, not logged)",
        "broker 10 down (4 more like it in the last 5s, not logged)"]


def test_every_client_logs_through_one_filtered_logger() -> None:
    logger = client_logger(12.0)
    assert logger is client_logger(12.0) and logger.name == LOGGER_NAME
    [repeats] = [f for f in logger.filters if isinstance(f, RepeatFilter)]
    assert repeats.interval_s == 12.0
    flush_repeats(force=True)  # nothing pending: no error
