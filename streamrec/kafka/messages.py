"""Input messages become events; the ones that cannot become dead letters.

A message is bad when it has no value, is larger than ``kafka.max_event_bytes`` (reason
``oversized``), is not msgpack/JSON (``undecodable``), fails the schema (``schema``) or names
an action outside the vocabulary (``unknown_action``). Whether a message is JSON or msgpack is
read from its first byte (``kafka.input_format=auto``, see :func:`streamrec.events.detect_format`).
A bad message goes to the dead-letter topic with its original key, value and headers, plus
these headers:

========================  ====================================================
``reason``                the error's ``reason`` slug (see :mod:`streamrec.errors`)
``error``                 the error message (at most 1000 bytes)
``source.topic``          the topic the message was read from
``source.partition``      its partition, as decimal text
``source.offset``         its offset, as decimal text
``original.size``         only when the value is cut: the original's size in bytes
========================  ====================================================

A dead letter always fits the dead-letter topic: an oversized original is cut to its first
``kafka.max_event_bytes`` bytes (``original.size`` says how large it was), and original
headers beyond ``MAX_KEPT_HEADER_BYTES`` are dropped. The service checks at start that
``kafka.max_event_bytes`` plus that room fits the dead-letter topic and its producer
(:func:`dead_letter_room`), so no dead letter can be refused for its size.

A valid event without an ``event_id`` gets ``"<topic>:<partition>:<offset>"`` as its id, so a
redelivered copy of it is recognised as a duplicate by the user's window.

>>> from streamrec.events import ActionVocabulary
>>> class Msg:  # the three Message methods used here
...     def value(self): return b'{"user_id": "u1", "item_id": "7", "action": "view", "timestamp": 5}'
...     def topic(self): return "events"
...     def partition(self): return 2
...     def offset(self): return 40
>>> event_from_message(Msg(), ActionVocabulary.for_domain("ecommerce"), "json", 1024).event_id
'events:2:40'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from streamrec.errors import ConfigError, DecodeError, EventError
from streamrec.events import ActionVocabulary, Event, InputFormat, decode_event

HEADER_REASON = "reason"
HEADER_ERROR = "error"
HEADER_TOPIC = "source.topic"
HEADER_PARTITION = "source.partition"
HEADER_OFFSET = "source.offset"
HEADER_ORIGINAL_SIZE = "original.size"
DEAD_LETTER_HEADERS = (HEADER_REASON, HEADER_ERROR, HEADER_TOPIC, HEADER_PARTITION, HEADER_OFFSET,
                       HEADER_ORIGINAL_SIZE)
MAX_ERROR_BYTES = 1000
MAX_KEPT_HEADER_BYTES = 8 * 1024  # of the original's headers; more are dropped from the dead letter
MAX_KEY_BYTES = 1024  # of the original's key
#: Room a dead letter needs beside its value: the key, our headers, the kept original headers and
#: the record's framing (with margin).
DEAD_LETTER_OVERHEAD = MAX_KEY_BYTES + MAX_ERROR_BYTES + MAX_KEPT_HEADER_BYTES + 6 * 1024

Headers = list[tuple[str, str | bytes | None]]
#: What ``Message.headers()`` returns.
SourceHeaders = Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None


class OversizedEventError(DecodeError):
    """A payload larger than ``kafka.max_event_bytes``; never decoded."""

    reason = "oversized"


class SourceMessage(Protocol):
    """What is read from a consumed message (``confluent_kafka.Message`` satisfies it)."""

    def value(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


def event_from_message(message: SourceMessage, vocab: ActionVocabulary, wire_format: InputFormat,
                       max_bytes: int) -> Event:
    """The message's event, with an ``event_id``; raises an :class:`EventError` if it is bad."""
    value = message.value()
    if value is None:
        raise DecodeError("message has no value (a tombstone); an event needs a body")
    if len(value) > max_bytes:
        raise OversizedEventError(f"payload of {len(value)} bytes exceeds kafka.max_event_bytes={max_bytes}")
    event = decode_event(value, vocab, wire_format, max_bytes)
    if event.event_id is None:
        event = dataclasses.replace(event, event_id=f"{message.topic()}:{message.partition()}:{message.offset()}")
    return event


@dataclass(frozen=True)
class DeadLetter:
    """What goes to the dead-letter topic for one bad message."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def dead_letter(key: bytes | None, value: bytes | None, original: SourceHeaders, error: EventError, topic: str,
                partition: int, offset: int, max_value_bytes: int) -> DeadLetter:
    """The dead letter of a bad message, cut to fit (see the module docstring).

    >>> letter = dead_letter(b"u1", b"x" * 100, None, DecodeError("bad"), "events", 0, 9, max_value_bytes=10)
    >>> len(letter.value), letter.headers[-1]
    (10, ('original.size', b'100'))
    """
    headers = dead_letter_headers(original, error, topic, partition, offset)
    if value is not None and len(value) > max_value_bytes:
        headers.append((HEADER_ORIGINAL_SIZE, str(len(value)).encode()))
        value = value[:max_value_bytes]
    return DeadLetter(key if key is None or len(key) <= MAX_KEY_BYTES else key[:MAX_KEY_BYTES], value, headers)


def dead_letter_room(max_event_bytes: int, producer_max_bytes: int, topic_max_bytes: int | None) -> int:
    """The largest dead-letter value the topic and the producer take; raises :class:`ConfigError`
    when ``kafka.max_event_bytes`` does not fit in it.

    >>> dead_letter_room(64 * 1024, 1_000_000, 1_048_588) == 1_000_000 - DEAD_LETTER_OVERHEAD
    True
    """
    limits = [("the producer's message.max.bytes", producer_max_bytes)]
    if topic_max_bytes is not None:
        limits.append(("the dead-letter topic's max.message.bytes", topic_max_bytes))
    what, limit = min(limits, key=lambda pair: pair[1])
    room = limit - DEAD_LETTER_OVERHEAD
    if max_event_bytes > room:
        raise ConfigError(f"kafka.max_event_bytes={max_event_bytes} does not fit a dead letter: {what} is {limit} "
                          f"and a dead letter needs {DEAD_LETTER_OVERHEAD} bytes beside the value; lower "
                          f"kafka.max_event_bytes to at most {max(room, 0)} or raise {what}")
    return room


def dead_letter_headers(original: SourceHeaders, error: EventError, topic: str, partition: int,
                        offset: int) -> Headers:
    """The original headers (minus any of ours, at most ``MAX_KEPT_HEADER_BYTES`` of them) followed
    by the dead-letter headers.

    >>> dead_letter_headers([("trace", b"1")], DecodeError("bad"), "events", 0, 9)[-3:]
    [('source.topic', b'events'), ('source.partition', b'0'), ('source.offset', b'9')]
    """
    pairs = original.items() if isinstance(original, Mapping) else (original or [])
    kept: Headers = []
    room = MAX_KEPT_HEADER_BYTES
    for key, value in pairs:
        room -= len(key) + len(value or b"")
        if room < 0:
            break
        if key not in DEAD_LETTER_HEADERS:
            kept.append((key, value))
    return [*kept,
            (HEADER_REASON, error.reason.encode()),
            (HEADER_ERROR, str(error).encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
            (HEADER_TOPIC, topic.encode()),
            (HEADER_PARTITION, str(partition).encode()),
            (HEADER_OFFSET, str(offset).encode())]
