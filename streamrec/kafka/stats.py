"""Counters of one service run, as plain attributes (metrics exporters read them later).

>>> stats = ServiceStats()
>>> stats.bad_messages["schema"] += 1
>>> stats.as_dict()["bad_messages"]
{'schema': 1}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


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
    dropped_users: int = 0
    items_loaded: int = 0
    bad_items: int = 0
    partitions_assigned: int = 0
    partitions_revoked: int = 0
    partitions_lost: int = 0
    longest_batch_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bad_messages"] = dict(self.bad_messages)
        return out
