"""Behaviour events: the schema, per-domain action vocabularies, and the wire formats.

An event is ``user_id``, ``item_id``, ``action``, ``timestamp`` (ms since the epoch), an
optional ``event_id`` (used to drop duplicates) and free ``attributes``. On the wire it is
a msgpack map or a JSON object with those keys.

>>> vocab = ActionVocabulary.for_domain("ecommerce")
>>> event = decode_event(b'{"user_id": "u1", "item_id": 7, "action": "cart", "timestamp": 1000}',
...                      vocab, wire_format="json")
>>> event.item_id, vocab.weight(event.action)
('7', 4.0)
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgpack

from streamrec.errors import DecodeError, SchemaError, UnknownActionError

WireFormat = Literal["msgpack", "json"]
#: What a reader accepts: one format, or ``auto`` (each payload's own, from its first byte).
InputFormat = Literal["auto", "msgpack", "json"]

#: Default action weights per domain. A weight is the strength of the event as a training
#: signal; actions with weight <= 0 (a skip) stay in the window as context but are never
#: used as positive examples.
DOMAIN_ACTIONS: dict[str, dict[str, float]] = {
    "ecommerce": {"view": 1.0, "click": 2.0, "cart": 4.0, "purchase": 8.0},
    "music": {"play": 1.0, "like": 4.0, "skip": 0.0},
    "social": {"follow": 4.0, "like": 2.0, "comment": 3.0},
    "video": {"watch": 1.0, "like": 4.0},
}

REQUIRED_FIELDS = ("user_id", "item_id", "action", "timestamp")


@dataclass(frozen=True, slots=True)
class Event:
    user_id: str
    item_id: str
    action: str
    timestamp: int
    event_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user_id": self.user_id,
            "item_id": self.item_id,
            "action": self.action,
            "timestamp": self.timestamp,
        }
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out


@dataclass(frozen=True)
class ActionVocabulary:
    """The actions a domain knows, each with its training weight."""

    weights: Mapping[str, float]

    @classmethod
    def for_domain(cls, domain: str, overrides: Mapping[str, float] | None = None) -> ActionVocabulary:
        if domain not in DOMAIN_ACTIONS and not overrides:
            raise SchemaError("domain", domain, "one of " + ", ".join(DOMAIN_ACTIONS))
        weights = dict(DOMAIN_ACTIONS.get(domain, {}))
        weights.update(overrides or {})
        return cls(weights)

    def __contains__(self, action: object) -> bool:
        return action in self.weights

    def weight(self, action: str) -> float:
        return self.weights[action]

    def is_positive(self, action: str) -> bool:
        return self.weights.get(action, 0.0) > 0.0


#: The latest timestamp an event may carry: int64 milliseconds, what msgpack and torch store.
MAX_TIMESTAMP_MS = 2**63 - 1
#: How deeply ``attributes`` may nest: a window snapshot wraps them five levels deeper, and msgpack
#: reads at most 1024 levels back (deeper, the whole snapshot would be unreadable).
MAX_ATTRIBUTE_DEPTH = 32
_MSGPACK_INTS = range(-(2**63), 2**64)


def _shown(value: Any) -> Any:
    """``value`` as an error may show it: a huge integer or a deeply nested container as a short
    description (``repr`` of a 5000-digit integer raises, of a 1000-level list overflows the stack)."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, (Mapping, list, tuple)) and _depth(value) > MAX_ATTRIBUTE_DEPTH:
        return reprlib.repr(value)
    return value


def is_text(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8 (JSON's ``\\ud800`` escapes give lone surrogates, which do not)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _as_id(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SchemaError(name, _shown(value), "a non-empty string or an integer")
    if isinstance(value, int) and value.bit_length() > 900:  # over 256 digits: too long, and maybe unprintable
        raise SchemaError(name, _shown(value), "a non-empty id of at most 256 characters")
    text = str(value)
    if not text or len(text) > 256:
        raise SchemaError(name, value, "a non-empty id of at most 256 characters")
    if not is_text(text):
        raise SchemaError(name, value, "valid Unicode text (it holds a lone surrogate)")
    return text


def _as_timestamp(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError("timestamp", _shown(value), "milliseconds since the epoch as a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise SchemaError("timestamp", value, "a finite number of milliseconds")
    if value < 0:
        raise SchemaError("timestamp", _shown(value), "a non-negative number of milliseconds")
    if value > MAX_TIMESTAMP_MS:
        raise SchemaError("timestamp", _shown(value), f"at most {MAX_TIMESTAMP_MS} milliseconds (int64)")
    return int(value)


def _as_attributes(value: Any) -> dict[Any, Any]:
    """The attributes as a dict a window snapshot can store: msgpack types, integers within
    64 bits, UTF-8 text, at most :data:`MAX_ATTRIBUTE_DEPTH` levels deep."""
    attributes = value or {}
    if not isinstance(attributes, Mapping):
        raise SchemaError("attributes", _shown(attributes), "a map/object")
    attributes = dict(attributes)
    if all(type(k) is str and k.isascii() and _is_plain(v) for k, v in attributes.items()):
        return attributes  # the usual case: flat ASCII text and numbers, nothing to check
    if _depth(attributes) > MAX_ATTRIBUTE_DEPTH:
        raise SchemaError("attributes", _shown(attributes), f"at most {MAX_ATTRIBUTE_DEPTH} levels of nesting")
    try:
        msgpack.packb(attributes, use_bin_type=True)
    except (ValueError, OverflowError, TypeError) as exc:  # a lone surrogate, a huge integer, a foreign type
        raise SchemaError("attributes", _shown(attributes), f"values msgpack can store ({exc})") from exc
    return attributes


def _is_plain(value: Any) -> bool:
    kind = type(value)
    return ((kind is str and value.isascii()) or kind is float or kind is bool or value is None
            or (kind is int and value in _MSGPACK_INTS))


def _depth(value: Any) -> int:
    """How deeply maps and arrays nest in ``value`` (walked without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, (list, tuple)) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_ATTRIBUTE_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


def event_from_mapping(obj: Any, vocab: ActionVocabulary) -> Event:
    """Validate a decoded record and build an :class:`Event`; raises a :class:`SchemaError`."""
    if not isinstance(obj, Mapping):
        raise SchemaError("<event>", _shown(obj), "a map/object with " + ", ".join(REQUIRED_FIELDS))
    for name in REQUIRED_FIELDS:
        if name not in obj:
            raise SchemaError(name, None, "a value (the field is required)")
    action = obj["action"]
    if not isinstance(action, str):
        raise SchemaError("action", _shown(action), "a string")
    if action not in vocab:
        raise UnknownActionError(action, list(vocab.weights))
    event_id = obj.get("event_id")
    if event_id is not None:
        event_id = _as_id(obj, "event_id")
    attributes = _as_attributes(obj.get("attributes"))
    return Event(
        user_id=_as_id(obj, "user_id"),
        item_id=_as_id(obj, "item_id"),
        action=action,
        timestamp=_as_timestamp(obj["timestamp"]),
        event_id=event_id,
        attributes=attributes,
    )


def detect_format(payload: bytes) -> WireFormat:
    """``json`` when the payload starts (after whitespace) with ``{``, else ``msgpack``.

    A msgpack map starts with 0x80-0x8f, 0xde or 0xdf; 0x7b (``{``) would be a lone integer, never
    an event, so the first byte tells the two apart.

    >>> detect_format(b' {"user_id": "u1"}'), detect_format(bytes([0x84]))
    ('json', 'msgpack')
    """
    return "json" if payload.lstrip()[:1] == b"{" else "msgpack"


def decode_event(
    payload: bytes,
    vocab: ActionVocabulary,
    wire_format: InputFormat = "auto",
    max_bytes: int = 64 * 1024,
) -> Event:
    """Decode and validate one event; raises :class:`DecodeError` or :class:`SchemaError`.

    ``wire_format="auto"`` reads each payload as JSON or msgpack by its first byte
    (:func:`detect_format`); a named format reads only that one.
    """
    if len(payload) > max_bytes:
        raise DecodeError(f"payload of {len(payload)} bytes exceeds max_event_bytes={max_bytes}")
    detected = detect_format(payload) if wire_format == "auto" else wire_format
    try:
        obj = json.loads(payload) if detected == "json" else msgpack.unpackb(payload, raw=False, strict_map_key=False)
    # RecursionError: JSON nested deeper than Python's stack; TypeError: a msgpack map keyed by an array or map
    except (ValueError, RecursionError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        if wire_format == "auto" and detected == "msgpack":  # say what was tried, and why
            raise DecodeError(f"neither a JSON object (it starts with {payload[:1]!r}, not '{{') nor a valid "
                              f"msgpack event: {exc}") from exc
        raise DecodeError(f"not a valid {detected} event: {exc}") from exc
    return event_from_mapping(obj, vocab)


def encode_event(event: Event, wire_format: WireFormat = "msgpack") -> bytes:
    if wire_format == "json":
        return json.dumps(event.to_dict(), ensure_ascii=False).encode()
    return msgpack.packb(event.to_dict(), use_bin_type=True)
