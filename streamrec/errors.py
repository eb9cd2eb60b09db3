"""Typed errors. Every error streamrec raises on purpose derives from :class:`StreamrecError`.

    StreamrecError
    ├── ConfigError              settings that cannot work together
    ├── EventError               one behaviour event is bad (the rest of the batch is unaffected)
    │   ├── DecodeError          bytes that are not msgpack/JSON, or too large
    │   └── SchemaError          a field is missing or has the wrong type/value
    │       └── UnknownActionError   the action is not in the domain's vocabulary
    ├── CatalogError             an item file or item record is unusable
    ├── SourceError              a recorded log cannot be read
    ├── ModelLoadError           the encoder model or tokenizer cannot be found/loaded
    ├── CheckpointError          a head or window checkpoint cannot be written or read
    ├── RecommendationError      bytes on the output topic that are not a recommendation
    ├── KafkaAuthError           the broker refused the login, or an ACL is missing (never retried)
    └── UsageError               an API called with arguments that cannot work (a caller's bug;
                                 also a ValueError)

Each error carries ``reason``, a short machine-readable slug used as the dead-letter
reason and as a metric label.
"""

from __future__ import annotations


class StreamrecError(Exception):
    reason = "error"


class ConfigError(StreamrecError):
    reason = "config"


class EventError(StreamrecError):
    reason = "invalid_event"

    @property
    def summary(self) -> str:
        """The reason without any of the message's content (for logs, which never show payloads)."""
        field = getattr(self, "field", None)
        return f"{self.reason} (field {field!r})" if field else self.reason


class DecodeError(EventError):
    reason = "undecodable"


class SchemaError(EventError):
    reason = "schema"

    def __init__(self, field: str, value: object, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"field {field!r}: got {shown}, expected {expected}")
        self.field = field
        self.value = value


class UnknownActionError(SchemaError):
    reason = "unknown_action"

    def __init__(self, value: object, known: list[str]) -> None:
        super().__init__("action", value, "one of " + ", ".join(sorted(known)))


class CatalogError(StreamrecError):
    reason = "catalog"


class SourceError(StreamrecError):
    reason = "source"


class ModelLoadError(StreamrecError):
    reason = "model"


class CheckpointError(StreamrecError):
    reason = "checkpoint"


class RecommendationError(StreamrecError):
    reason = "recommendation"


class KafkaAuthError(StreamrecError):
    reason = "kafka_auth"


class UsageError(StreamrecError, ValueError):
    reason = "usage"
