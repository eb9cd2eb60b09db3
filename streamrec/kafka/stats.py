"""Counters of one service run, as plain attributes (metrics exporters read them later).

>>> stats = ServiceStats()
>>> stats.bad_messages["schema"] += 1
>>> stats.as_dict()["bad_messages"]
{'schema': 1}
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamrec.pipeline import BatchResult

#: The progress line's logger; ``streamrec run`` logs it at INFO whatever the log level.
progress_log = logging.getLogger("streamrec.progress")


@dataclass
class ServiceStats:
    events_consumed: int = 0  # input messages read, good or bad
    events_processed: int = 0  # valid events handed to the pipeline
    duplicates: int = 0  # dropped by the windows' event_id check (redeliveries)
    too_late: int = 0
    recommendations_produced: int = 0
    bad_messages: Counter[str] = field(default_factory=Counter)  # by EventError.reason
    dead_lettered: int = 0
    changelog_records: int = 0
    batches: int = 0
    commits: int = 0
    commit_failures: int = 0
    transactions_aborted: int = 0
    checkpoints: int = 0
    restored_users: int = 0
    dropped_users: int = 0  # their partitions went to another member
    forgotten_users: int = 0  # forget requests applied (streamrec.forget)
    evicted_users: int = 0  # idle past window.idle_ttl_seconds or over window.max_users: tombstoned
    items_loaded: int = 0
    bad_items: int = 0
    partitions_assigned: int = 0
    partitions_revoked: int = 0
    partitions_lost: int = 0
    longest_batch_seconds: float = 0.0

    def count_batch(self, events: int, result: BatchResult, recommendations: int, dead_lettered: int,
                    changelog_records: int) -> None:
        """A batch delivered and committed."""
        self.batches += 1
        self.events_processed += events
        self.duplicates += result.duplicates
        self.too_late += result.too_late
        self.recommendations_produced += recommendations
        self.dead_lettered += dead_lettered
        self.changelog_records += changelog_records
        self.evicted_users += len(result.evicted)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bad_messages"] = dict(self.bad_messages)
        return out


class Progress:
    """A one-line summary every ``interval_s`` (0: never): rates since the previous line, totals.

    >>> now = [0.0]
    >>> progress = Progress(10, clock=lambda: now[0])
    >>> stats = ServiceStats(events_consumed=1000, events_processed=990, recommendations_produced=400)
    >>> now[0] = 10.0; progress.due()
    True
    >>> line = progress.line(stats, {0: 12, 1: 30}, model_version=7).split(", ")
    >>> line[:3], line[-2:]
    (['progress: 1,000 events consumed (100/s)', '990 processed', '400 recommendations (40/s)'], \
['lag 42 on 2 partitions', 'model v7'])
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._last = clock()
        self._before = ServiceStats()

    def due(self) -> bool:
        return self.interval_s > 0 and self.clock() - self._last >= self.interval_s

    def line(self, stats: ServiceStats, lag: Mapping[int, int], model_version: int) -> str:
        now = self.clock()
        seconds = max(now - self._last, 1e-9)
        before, self._before, self._last = self._before, replace(stats, bad_messages=Counter()), now
        events = (stats.events_consumed - before.events_consumed) / seconds
        recs = (stats.recommendations_produced - before.recommendations_produced) / seconds
        return (f"progress: {stats.events_consumed:,} events consumed ({events:,.0f}/s), "
                f"{stats.events_processed:,} processed, {stats.recommendations_produced:,} recommendations "
                f"({recs:,.0f}/s), {stats.dead_lettered:,} dead-lettered, lag {sum(lag.values()):,} on "
                f"{len(lag)} partitions, model v{model_version}")

    def log(self, stats: ServiceStats, lag: Mapping[int, int], model_version: int) -> None:
        if self.interval_s > 0:
            progress_log.info(self.line(stats, lag, model_version))
