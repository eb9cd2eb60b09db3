"""streamrec: fresh recommendations from a behaviour stream, read by a language model.

The core is transport-agnostic: :class:`Pipeline` takes a micro-batch of :class:`Event` and
returns :class:`Recommendation` objects. :class:`Runner` drives it from a :class:`Source` into a
:class:`Sink`: the file replay (:func:`replay_files`, a :class:`ListSource`) and the Kafka service
(``streamrec run``) are both such a pair; :mod:`streamrec.testing` has the pieces to test your own.

Names are imported on first use, so ``import streamrec`` (and every CLI start) does not pay
for torch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ActionVocabulary": "events", "Event": "events", "decode_event": "events", "encode_event": "events",
    "BatchResult": "pipeline", "Pipeline": "pipeline",
    "Catalog": "catalog", "Item": "catalog",
    "MicroBatcher": "batching",
    "EventBatch": "runner", "ListSource": "runner", "Runner": "runner", "Sink": "runner", "Source": "runner",
    "Recommendation": "recommendations", "RecommendedItem": "recommendations",
    "Settings": "config", "load_settings": "config",
    "TextTemplate": "text",
    "WindowStore": "windows",
    "replay": "replay", "replay_files": "replay",
    "StreamrecError": "errors", "CatalogError": "errors", "CheckpointError": "errors", "ConfigError": "errors",
    "DecodeError": "errors", "EventError": "errors", "ModelLoadError": "errors", "SchemaError": "errors",
    "SourceError": "errors", "UnknownActionError": "errors", "RecommendationError": "errors", "UsageError": "errors",
}

__all__ = [
    "ActionVocabulary",
    "BatchResult",
    "Catalog",
    "CatalogError",
    "CheckpointError",
    "ConfigError",
    "DecodeError",
    "Event",
    "EventBatch",
    "EventError",
    "Item",
    "ListSource",
    "MicroBatcher",
    "ModelLoadError",
    "Pipeline",
    "Recommendation",
    "RecommendationError",
    "RecommendedItem",
    "Runner",
    "SchemaError",
    "Settings",
    "Sink",
    "Source",
    "SourceError",
    "StreamrecError",
    "TextTemplate",
    "UnknownActionError",
    "UsageError",
    "WindowStore",
    "__version__",
    "decode_event",
    "encode_event",
    "load_settings",
    "replay",
    "replay_files",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"streamrec.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from streamrec.batching import MicroBatcher
    from streamrec.catalog import Catalog, Item
    from streamrec.config import Settings, load_settings
    from streamrec.errors import (
        CatalogError,
        CheckpointError,
        ConfigError,
        DecodeError,
        EventError,
        ModelLoadError,
        RecommendationError,
        SchemaError,
        SourceError,
        StreamrecError,
        UnknownActionError,
        UsageError,
    )
    from streamrec.events import ActionVocabulary, Event, decode_event, encode_event
    from streamrec.pipeline import BatchResult, Pipeline
    from streamrec.recommendations import Recommendation, RecommendedItem
    from streamrec.replay import replay, replay_files
    from streamrec.runner import EventBatch, ListSource, Runner, Sink, Source
    from streamrec.text import TextTemplate
    from streamrec.windows import WindowStore
