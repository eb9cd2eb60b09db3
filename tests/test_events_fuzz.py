"""Fuzzed input to the event decoder (``streamrec/events.py``).

Whatever the bytes (arbitrary, any JSON or msgpack value, a valid event with a field dropped,
retyped, huge, non-finite, a lone surrogate or nested past msgpack's limits, or with its bytes
flipped, cut or spliced), :func:`decode_event` returns a valid event or raises a
:class:`DecodeError` / :class:`SchemaError` whose message names the field. An accepted event
re-encodes to the same bytes and goes into a window snapshot and back: the stages after the
decoder (the changelog, the state directory) never meet a value they cannot store.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from fuzzkit import FUZZ, ODD, json_values, msgpack_values, mutated_bytes, mutated_tree, nested
from hypothesis import assume, given
from hypothesis import strategies as st

from streamrec.errors import DecodeError, EventError, SchemaError
from streamrec.events import MAX_TIMESTAMP_MS, ActionVocabulary, Event, decode_event, detect_format, encode_event
from streamrec.windows import WindowStore

VOCAB = ActionVocabulary.for_domain("ecommerce")
EVENTS = [Event("u1", "i9", "purchase", 1_700_000_000_123, "e-1", {"price": "9.99"}), Event("u2", "7", "view", 5),
          Event("ü", "Öl", "cart", 0, None, {"tags": ["a", "b"], "n": 3, "x": 1.5, "nested": {"k": None}})]
RECORDS = [event.to_dict() for event in EVENTS]
SEEDS = [encode_event(event, fmt) for event in EVENTS for fmt in ("json", "msgpack")]
WIRES = st.sampled_from(["auto", "json", "msgpack"])

ids = st.text(min_size=1, max_size=40)
attribute_values = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20) | st.floats(
    allow_nan=False) | st.lists(st.text(max_size=5), max_size=3)
valid_events = st.builds(Event, user_id=ids, item_id=ids, action=st.sampled_from(sorted(VOCAB.weights)),
                         timestamp=st.integers(0, MAX_TIMESTAMP_MS), event_id=st.none() | ids,
                         attributes=st.dictionaries(st.text(max_size=10), attribute_values, max_size=4))


def decoded(payload: bytes, wire: Any = "auto") -> Event | None:
    """The event, checked to be valid and storable; None for a typed error that names its field.
    Any other exception fails the test."""
    try:
        event = decode_event(payload, VOCAB, wire)
    except SchemaError as exc:
        assert str(exc).startswith(f"field {exc.field!r}: got ") and exc.reason in ("schema", "unknown_action")
        return None
    except DecodeError as exc:
        assert str(exc) and exc.reason == "undecodable"
        return None
    assert_valid(event, detect_format(payload) if wire == "auto" else wire)
    return event


def assert_valid(event: Event, fmt: Any) -> None:
    assert isinstance(event.user_id, str) and 0 < len(event.user_id) <= 256
    assert isinstance(event.item_id, str) and 0 < len(event.item_id) <= 256
    assert event.action in VOCAB and 0 <= event.timestamp <= MAX_TIMESTAMP_MS and type(event.timestamp) is int
    assert event.event_id is None or isinstance(event.event_id, str)
    encoded = encode_event(event, fmt)
    assert encode_event(decode_event(encoded, VOCAB, fmt), fmt) == encoded
    store = WindowStore()
    store.add(event)
    assert WindowStore().restore(store.snapshot()) == [event.user_id]


@FUZZ
@given(payload=st.binary(max_size=300), wire=WIRES)
def test_arbitrary_bytes_become_an_event_or_a_typed_error(payload: bytes, wire: str) -> None:
    decoded(payload, wire)


@FUZZ
@given(value=json_values)
def test_any_json_value_becomes_an_event_or_a_typed_error(value: Any) -> None:
    try:
        payload = json.dumps(value).encode()
    except (RecursionError, ValueError):  # what json.dumps itself cannot write
        assume(False)
    decoded(payload, "json")


@FUZZ
@given(value=msgpack_values)
def test_any_msgpack_value_becomes_an_event_or_a_typed_error(value: Any) -> None:
    decoded(msgpack.packb(value, use_bin_type=True))


@FUZZ
@given(record=st.sampled_from(RECORDS).flatmap(mutated_tree), fmt=st.sampled_from(["json", "msgpack"]))
def test_a_valid_event_with_a_field_dropped_retyped_or_added_is_decoded_or_refused_by_name(record: Any,
                                                                                        fmt: str) -> None:
    try:
        payload = json.dumps(record).encode() if fmt == "json" else msgpack.packb(record, use_bin_type=True)
    except (RecursionError, ValueError, TypeError, OverflowError):  # the format cannot hold it
        assume(False)
    decoded(payload, fmt)


@FUZZ
@given(payload=mutated_bytes(SEEDS), wire=WIRES)
def test_valid_events_with_bytes_flipped_cut_or_spliced_are_decoded_or_refused(payload: bytes, wire: str) -> None:
    decoded(payload, wire)


@FUZZ
@given(event=valid_events, fmt=st.sampled_from(["json", "msgpack"]))
def test_every_valid_event_round_trips_through_both_formats(event: Event, fmt: Any) -> None:
    assert decode_event(encode_event(event, fmt), VOCAB, fmt) == event
    assert_valid(event, fmt)


@pytest.mark.parametrize(("payload", "error", "field"), [
    (b'{"user_id": "u", "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", DecodeError, None),  # deeper than the stack
    (b"\x81\x91\x01\x02", DecodeError, None),  # a msgpack map keyed by an array
    (b"\x81\x81\x01\x02\x03", DecodeError, None),  # keyed by a map
    (b"\x91" * 1000 + b"\x90", SchemaError, "<event>"),  # 1000 nested arrays: too deep to print
    (b'{"user_id": "u", "item_id": "i", "action": "view", "timestamp": 1e300}', SchemaError, "timestamp"),
    (b'{"user_id": "u", "item_id": "i", "action": "view", "timestamp": 18446744073709551616}', SchemaError,
     "timestamp"),
    (b'{"user_id": "u", "item_id": "i", "action": "view", "timestamp": ' + b"9" * 4300 + b"}", SchemaError,
     "timestamp"),
    (b'{"user_id": "\\ud800", "item_id": "i", "action": "view", "timestamp": 1}', SchemaError, "user_id"),
    (b'{"user_id": "u", "item_id": "i", "action": "view", "timestamp": 1, "attributes": {"n": 18446744073709551616}}',
     SchemaError, "attributes"),
    (b'{"user_id": "u", "item_id": "i", "action": "view", "timestamp": 1, "attributes": {"\\udfff": 1}}',
     SchemaError, "attributes"),
    (json.dumps({**RECORDS[1], "attributes": nested(40)}).encode(), SchemaError, "attributes"),
    (msgpack.packb({**RECORDS[1], "attributes": nested(1000)}), SchemaError, "attributes"),
], ids=["deep-json", "array-key", "map-key", "deep-msgpack", "1e300", "2**64", "4300-digits", "lone-surrogate-id",
        "huge-attribute", "lone-surrogate-key", "attributes-40-deep", "attributes-1000-deep"])
def test_inputs_that_once_crashed_or_broke_a_snapshot_are_refused_by_name(payload: bytes, error: type[EventError],
                                                                         field: str | None) -> None:
    with pytest.raises(error) as info:
        decode_event(payload, VOCAB)
    if field is not None:
        assert isinstance(info.value, SchemaError) and info.value.field == field


@FUZZ
@given(timestamp=ODD | st.integers() | st.floats())
def test_a_timestamp_is_a_non_negative_int64_number_of_milliseconds_or_refused_by_name(timestamp: Any) -> None:
    try:
        payload = json.dumps({**RECORDS[1], "timestamp": timestamp}).encode()
    except (RecursionError, ValueError):
        assume(False)
    event = decoded(payload)
    ok = type(timestamp) in (int, float) and 0 <= timestamp <= MAX_TIMESTAMP_MS
    assert (event is not None) == ok, (timestamp, event)
