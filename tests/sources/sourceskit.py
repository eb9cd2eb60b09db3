"""Shared by the readers' tests: the fixture logs, the vocabularies, the column maps, small helpers.

Imported by the tests as ``from sourceskit import ...`` (this directory is on ``sys.path`` under
pytest's default import mode, as for ``tests/kafka/kafkakit.py``). The fixtures under
tests/fixtures/sources/ are tiny invented logs in each format (no real MovieLens or Amazon data).
"""

from __future__ import annotations

from pathlib import Path

from streamrec.events import ActionVocabulary
from streamrec.sources import RecordedLog

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
RECBOLE = FIXTURES / "recbole"
ECOMMERCE = ActionVocabulary.for_domain("ecommerce")
VIDEO = ActionVocabulary.for_domain("video")

CSV_MAP = {"event_id": "eid", "user_id": "uid", "item_id": "product", "action": "kind", "timestamp": "ts"}
JSONL_MAP = {
    "user_id": "user",
    "item_id": "item",
    "timestamp": "time",
    "timestamp_unit": "s",
    "default_action": "view",
}


def event_ids(log: RecordedLog) -> list[str | None]:
    return [event.event_id for event in log.events]


def rejected_at(log: RecordedLog) -> dict[str, str]:
    return dict(log.rejected)
