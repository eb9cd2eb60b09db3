"""Watching the share of each partition's messages that are dead-lettered.

A few bad messages are normal; every message of a partition rejected is an outage in disguise
(a producer writing another format or schema, a wrong topic). :class:`DeadLetterRate` keeps the
outcome of each partition's last ``window`` messages, exports their dead-lettered share as
``streamrec_dead_letter_ratio{topic, partition}``, and logs a warning (with the reason and an
example error) when all of at least ``min_messages`` recent messages of a partition were
rejected, and again when the partition recovers. The example names the reason and the field,
never the message's content (the dead letter's ``error`` header has the details).

>>> rate = DeadLetterRate("events", window=10, min_messages=5)
>>> rate.observe(0, good=0, bad=["undecodable"] * 6)
True
>>> rate.ratio(0), rate.observe(0, good=4, bad=[]), round(rate.ratio(0), 2)
(1.0, False, 0.6)
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from streamrec.metrics import Metrics

if TYPE_CHECKING:
    from streamrec.kafka.batch import Batch

log = logging.getLogger(__name__)

WINDOW = 200
MIN_MESSAGES = 20


class DeadLetterRate:
    """Per partition: how many of the last ``window`` messages were dead-lettered."""

    def __init__(self, topic: str, metrics: Metrics | None = None, window: int = WINDOW,
                 min_messages: int = MIN_MESSAGES) -> None:
        self.topic = topic
        self.metrics = metrics
        self.window = window
        self.min_messages = min_messages
        self._outcomes: dict[int, deque[bool]] = {}  # partition -> True for each dead-lettered message
        self._alarmed: set[int] = set()

    def observe_batch(self, batch: Batch) -> None:
        bad: dict[int, list[str]] = {}
        for letter in batch.bad:
            bad.setdefault(int(letter.message.partition() or 0), []).append(letter.error.summary)
        for partition in batch.next_offsets:
            self.observe(partition, batch.good[partition], bad.get(partition, []))

    def observe(self, partition: int, good: int, bad: Sequence[str]) -> bool:
        """A batch's messages of ``partition``: ``good`` valid ones and the bad ones' error summaries.
        Returns whether the partition is in alarm (every recent message dead-lettered)."""
        outcomes = self._outcomes.setdefault(partition, deque(maxlen=self.window))
        outcomes.extend([False] * min(good, self.window))
        outcomes.extend([True] * min(len(bad), self.window))
        ratio = self.ratio(partition)
        if self.metrics is not None:
            self.metrics.dead_letter_ratio.labels(topic=self.topic, partition=str(partition)).set(ratio)
        alarm = len(outcomes) >= self.min_messages and ratio == 1.0
        if alarm and partition not in self._alarmed:
            self._alarmed.add(partition)
            log.warning("every one of the last %d messages of %s[%d] was dead-lettered, e.g. %s (details in the "
                        "dead letters' error header); is the producer "
                        "writing events streamrec reads (JSON or msgpack maps with user_id, item_id, action, "
                        "timestamp)?", len(outcomes), self.topic, partition, bad[-1] if bad else "?")
        elif not alarm and partition in self._alarmed and ratio < 1.0:
            self._alarmed.discard(partition)
            log.warning("%s[%d] has valid events again (%.0f%% of the last %d dead-lettered)", self.topic,
                        partition, 100 * ratio, len(outcomes))
        return alarm

    def ratio(self, partition: int) -> float:
        outcomes = self._outcomes.get(partition)
        return sum(outcomes) / len(outcomes) if outcomes else 0.0

    def forget(self, partitions: Collection[int]) -> None:
        """Partitions this instance no longer holds: their series go."""
        for partition in partitions:
            self._alarmed.discard(partition)
            if self._outcomes.pop(partition, None) is not None and self.metrics is not None:
                self.metrics.dead_letter_ratio.remove(self.topic, str(partition))
