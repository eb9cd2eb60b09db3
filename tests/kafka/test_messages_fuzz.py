"""Fuzzed input to the message decoder (``streamrec/kafka/messages.py``), without a broker.

Any message value (none, oversized, arbitrary, or a valid event mutated) becomes an event with an
``event_id`` or an :class:`EventError`; the error's dead letter always fits: its value is cut to
the limit (the original size said), the kept original headers stay within their room and lose any
of ours, the key is cut, and ``reason``/``error`` say what went wrong.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from confluent_kafka import Message
from fuzzkit import FUZZ, mutated_bytes
from hypothesis import given
from hypothesis import strategies as st

from streamrec.errors import EventError
from streamrec.events import ActionVocabulary, Event, decode_event, encode_event
from streamrec.kafka.messages import (
    DEAD_LETTER_HEADERS,
    MAX_ERROR_BYTES,
    MAX_KEPT_HEADER_BYTES,
    MAX_KEY_BYTES,
    dead_letter,
    event_from_message,
)

VOCAB = ActionVocabulary.for_domain("ecommerce")
SEEDS = [encode_event(Event("u1", "i9", "purchase", 1_700_000_000_123, None, {"price": "9.99"}), fmt)
         for fmt in ("json", "msgpack")]
values = st.none() | st.binary(max_size=300) | mutated_bytes(SEEDS) | st.sampled_from(SEEDS)
header_values = st.none() | st.binary(max_size=3000) | st.text(max_size=50)
headers = st.lists(st.tuples(st.sampled_from([*DEAD_LETTER_HEADERS, "trace", "tenant", "é"]), header_values),
                   max_size=6)


@FUZZ
@given(value=values, max_bytes=st.integers(1, 64 * 1024), key=st.none() | st.binary(max_size=2000),
       original=headers)
def test_a_message_becomes_an_event_or_a_dead_letter_that_fits(value: bytes | None, max_bytes: int, key: bytes | None,
                                                               original: list[tuple[str, Any]]) -> None:
    try:
        message = Message(topic="events", partition=2, offset=40, value=value)
        event = event_from_message(message, VOCAB, "auto", max_bytes)
    except EventError as error:
        letter = dead_letter(key, value, original, error, "events", 2, 40, max_value_bytes=max_bytes)
        named = dict(letter.headers)
        assert named["reason"] == error.reason.encode() and error.reason != "invalid_event"
        assert 0 < len(named["error"] or b"") <= MAX_ERROR_BYTES
        assert letter.key is None or len(letter.key) <= MAX_KEY_BYTES
        if value is None or len(value) <= max_bytes:
            assert letter.value == value and "original.size" not in named
        else:
            assert letter.value == value[:max_bytes] and named["original.size"] == str(len(value)).encode()
        ours = len(DEAD_LETTER_HEADERS) - ("original.size" not in named)
        kept = letter.headers[:-ours]
        assert not {name for name, _ in kept} & set(DEAD_LETTER_HEADERS)
        assert sum(len(name) + len(v or b"") for name, v in kept) <= MAX_KEPT_HEADER_BYTES
        return
    assert value is not None and len(value) <= max_bytes
    own = decode_event(value, VOCAB)
    assert event == (own if own.event_id is not None else replace(own, event_id="events:2:40"))
