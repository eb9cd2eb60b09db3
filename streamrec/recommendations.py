"""The published recommendation: what goes to the output topic or file, as msgpack or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack


@dataclass(frozen=True, slots=True)
class RecommendedItem:
    item_id: str
    score: float
    reason: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class Recommendation:
    user_id: str
    items: list[RecommendedItem]
    text: str
    model_version: int
    event_time: int  # timestamp (ms) of the newest event this recommendation reflects
    produced_at: int  # wall-clock ms when it was made
    source: dict[str, Any] = field(default_factory=dict)  # e.g. topic/partition/offset of that event

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.source:
            out.pop("source")
        return out

    def to_msgpack(self) -> bytes:
        return msgpack.packb(self.to_dict(), use_bin_type=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recommendation:
        items = [RecommendedItem(**item) for item in data["items"]]
        return cls(**{**data, "items": items})

    @classmethod
    def from_msgpack(cls, payload: bytes) -> Recommendation:
        return cls.from_dict(msgpack.unpackb(payload, raw=False))
