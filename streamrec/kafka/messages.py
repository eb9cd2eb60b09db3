"""Input messages become events; the ones that cannot become dead letters.

A message is bad when it has no value, is larger than ``kafka.max_event_bytes`` (reason
``oversized``), is not msgpack/JSON (``undecodable``), fails the schema (``schema``) or names
an action outside the vocabulary (``unknown_action``). A bad message goes to the dead-letter
topic with its original key, value and headers, plus these headers:

========================  ====================================================
``reason``                the error's ``reason`` slug (see :mod:`streamrec.errors`)
``error``                 the error message (at most 1000 bytes)
``source.topic``          the topic the message was read from
``source.partition``      its partition, as decimal text
``source.offset``         its offset, as decimal text
========================  ====================================================

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
from typing import Protocol

from streamrec.errors import DecodeError, EventError
from streamrec.events import ActionVocabulary, Event, WireFormat, decode_event

HEADER_REASON = "reason"
HEADER_ERROR = "error"
HEADER_TOPIC = "source.topic"
HEADER_PARTITION = "source.partition"
HEADER_OFFSET = "source.offset"
DEAD_LETTER_HEADERS = (HEADER_REASON, HEADER_ERROR, HEADER_TOPIC, HEADER_PARTITION, HEADER_OFFSET)
MAX_ERROR_BYTES = 1000

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


def event_from_message(message: SourceMessage, vocab: ActionVocabulary, wire_format: WireFormat,
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


def dead_letter_headers(original: SourceHeaders, error: EventError, topic: str, partition: int,
                        offset: int) -> Headers:
    """The original headers (minus any of ours) followed by the dead-letter headers.

    >>> dead_letter_headers([("trace", b"1")], DecodeError("bad"), "events", 0, 9)[-3:]
    [('source.topic', b'events'), ('source.partition', b'0'), ('source.offset', b'9')]
    """
    pairs = original.items() if isinstance(original, Mapping) else (original or [])
    kept: Headers = [(key, value) for key, value in pairs if key not in DEAD_LETTER_HEADERS]
    return [*kept,
            (HEADER_REASON, error.reason.encode()),
            (HEADER_ERROR, str(error).encode("utf-8", "replace")[:MAX_ERROR_BYTES]),
            (HEADER_TOPIC, topic.encode()),
            (HEADER_PARTITION, str(partition).encode()),
            (HEADER_OFFSET, str(offset).encode())]
