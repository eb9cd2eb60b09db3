"""librdkafka's log lines, through Python logging, with repeats collapsed.

Every client the service makes logs through the ``streamrec.kafka.client`` logger (librdkafka's
``log_cb``; confluent-kafka's ``logger`` setting), so ``--log-json`` covers them too. During a
broker outage each client reports every failed reconnect ("Connection refused", several a
second per client); :class:`RepeatFilter` lets the first line of a kind through, counts the
repeats for ``kafka.log_repeat_seconds``, and then logs one summary line with the count.

>>> now = [0.0]
>>> repeats = RepeatFilter(30, clock=lambda: now[0])
>>> def record(text):
...     return logging.LogRecord("k", logging.ERROR, "", 0, "%s [%s] %s", ("FAIL", "rdkafka#consumer-1", text), None)
>>> [repeats.filter(record(f"Connect failed after {n}ms")) for n in range(3)]
[True, False, False]
>>> now[0] = 31.0
>>> summary = record("Connect failed after 9ms"); repeats.filter(summary), summary.getMessage()[-44:]
(True, '(2 more like it in the last 31s, not logged)')
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LOGGER_NAME = "streamrec.kafka.client"
_NUMBERS = re.compile(r"\d+")


@dataclass
class _Seen:
    first: float
    suppressed: int = 0
    last: str = ""  # the newest suppressed message, as it was


class RepeatFilter(logging.Filter):
    """Passes the first record of each kind per ``interval_s``; counts and summarises the rest.

    Records of one kind share their message with the digits removed (so "after 0ms" and "after
    3ms" are alike) and their level. Only WARNING and above are collapsed.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[tuple[int, str], _Seen] = {}
        self._lock = threading.Lock()  # librdkafka logs from whichever thread polls

    def filter(self, record: logging.LogRecord) -> bool:
        if self.interval_s <= 0 or record.levelno < logging.WARNING:
            return True
        key = (record.levelno, _NUMBERS.sub("#", record.getMessage()))
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.first < self.interval_s:
                seen.suppressed += 1
                seen.last = record.getMessage()
                return False
            self._seen[key] = _Seen(now)
        if seen is not None and seen.suppressed:
            record.msg, record.args = (f"{record.getMessage()} ({seen.suppressed} more like it in the last "
                                       f"{now - seen.first:.0f}s, not logged)"), None
        return True

    def flush(self, logger: logging.Logger, force: bool = False) -> None:
        """Log a summary for each kind whose interval is over (all, if ``force``) and forget it."""
        now = self.clock()
        with self._lock:
            due = [(key, seen) for key, seen in self._seen.items() if force or now - seen.first >= self.interval_s]
            for key, _ in due:
                del self._seen[key]
        for (level, _), seen in due:
            if seen.suppressed:
                logger.log(level, "%d more like this in the last %.0fs, not logged, the last: %s", seen.suppressed,
                           now - seen.first, seen.last)


def _repeat_filter(logger: logging.Logger) -> RepeatFilter | None:
    return next((f for f in logger.filters if isinstance(f, RepeatFilter)), None)


def client_logger(repeat_interval_s: float) -> logging.Logger:
    """The logger every Kafka client gets, its repeats collapsed over ``repeat_interval_s``."""
    logger = logging.getLogger(LOGGER_NAME)
    repeats = _repeat_filter(logger)
    if repeats is None:
        repeats = RepeatFilter(repeat_interval_s)
        logger.addFilter(repeats)
    repeats.interval_s = repeat_interval_s
    return logger


def flush_repeats(force: bool = False) -> None:
    """Summaries of the repeats whose interval is over; the service calls it between batches."""
    logger = logging.getLogger(LOGGER_NAME)
    repeats = _repeat_filter(logger)
    if repeats is not None:
        repeats.flush(logger, force)
