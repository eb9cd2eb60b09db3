"""streamrec: fresh recommendations from a behaviour stream, read by a language model.

The core is transport-agnostic: :class:`Pipeline` takes a micro-batch of :class:`Event` and
returns :class:`Recommendation` objects. The file replay (:func:`replay_files`) and the Kafka
service (``streamrec run``) are thin adapters around it.
"""

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
    SchemaError,
    SourceError,
    StreamrecError,
    UnknownActionError,
)
from streamrec.events import ActionVocabulary, Event, decode_event, encode_event
from streamrec.pipeline import BatchResult, Pipeline
from streamrec.recommendations import Recommendation, RecommendedItem
from streamrec.replay import replay, replay_files
from streamrec.text import TextTemplate
from streamrec.windows import WindowStore

__version__ = "0.1.0"

__all__ = [
    "ActionVocabulary",
    "BatchResult",
    "Catalog",
    "CatalogError",
    "CheckpointError",
    "ConfigError",
    "DecodeError",
    "Event",
    "EventError",
    "Item",
    "MicroBatcher",
    "ModelLoadError",
    "Pipeline",
    "Recommendation",
    "RecommendedItem",
    "SchemaError",
    "Settings",
    "SourceError",
    "StreamrecError",
    "TextTemplate",
    "UnknownActionError",
    "WindowStore",
    "__version__",
    "decode_event",
    "encode_event",
    "load_settings",
    "replay",
    "replay_files",
]
