import json

import msgpack
import pytest

from streamrec.errors import DecodeError, SchemaError, UnknownActionError
from streamrec.events import DOMAIN_ACTIONS, ActionVocabulary, Event, decode_event, encode_event

VOCAB = ActionVocabulary.for_domain("ecommerce")


def record(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"user_id": "u1", "item_id": "i1", "action": "view", "timestamp": 1_000}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize("wire", ["msgpack", "json"])
def test_round_trip_keeps_every_field(wire: str) -> None:
    event = Event("u1", "i9", "purchase", 1_700_000_000_123, "e-1", {"price": "9.99"})
    assert decode_event(encode_event(event, wire), VOCAB, wire) == event  # type: ignore[arg-type]


def test_auto_reads_each_payload_in_its_own_format() -> None:
    event = Event("u1", "i9", "view", 5)
    assert decode_event(encode_event(event, "json"), VOCAB) == event  # "auto" is the default
    assert decode_event(b"  \n" + encode_event(event, "json"), VOCAB) == event
    assert decode_event(encode_event(event, "msgpack"), VOCAB) == event
    with pytest.raises(DecodeError, match=r"neither a JSON object .* nor a valid msgpack event"):
        decode_event(b"user=u1;item=i9", VOCAB)
    with pytest.raises(DecodeError, match="not a valid msgpack event"):  # a named format reads only itself
        decode_event(encode_event(event, "json"), VOCAB, "msgpack")


def test_integer_ids_become_strings() -> None:
    event = decode_event(msgpack.packb(record(user_id=5, item_id=77)), VOCAB)
    assert (event.user_id, event.item_id) == ("5", "77")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": -5}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"user_id": None}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"item_id": 1.5}, "item_id"),
        ({"item_id": ...}, "item_id"),
        ({"attributes": [1, 2]}, "attributes"),
        ({"action": 3}, "action"),
    ],
)
def test_schema_errors_name_the_field_and_value(changes: dict[str, object], field: str) -> None:
    with pytest.raises(SchemaError) as info:
        decode_event(json.dumps(record(**changes)).encode(), VOCAB, "json")
    assert info.value.field == field
    assert repr(field) in str(info.value)


def test_unknown_action_lists_the_vocabulary() -> None:
    with pytest.raises(UnknownActionError, match=r"'dance'.*cart, click, purchase, view") as info:
        decode_event(msgpack.packb(record(action="dance")), VOCAB)
    assert info.value.reason == "unknown_action"


@pytest.mark.parametrize(
    "payload", [b"\x93\x01", msgpack.packb(record())[:-3], b"\xc1", msgpack.packb(record()) + b"\x01"]
)
def test_undecodable_msgpack_is_a_decode_error(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(payload, VOCAB)


def test_non_map_payload_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="<event>"):
        decode_event(msgpack.packb([1, 2, 3]), VOCAB)


def test_oversized_payload_is_rejected_before_decoding() -> None:
    big = msgpack.packb(record(attributes={"blob": "x" * 5000}))
    with pytest.raises(DecodeError, match="exceeds"):
        decode_event(big, VOCAB, max_bytes=1024)


def test_one_bad_event_does_not_affect_the_rest() -> None:
    payloads = [msgpack.packb(record(item_id=str(i))) for i in range(5)]
    payloads[2] = b"garbage"
    good, bad = [], []
    for payload in payloads:
        try:
            good.append(decode_event(payload, VOCAB))
        except DecodeError as exc:
            bad.append(exc)
    assert [e.item_id for e in good] == ["0", "1", "3", "4"] and len(bad) == 1


def test_domains_have_their_actions_and_weights() -> None:
    assert set(DOMAIN_ACTIONS["music"]) == {"play", "like", "skip"}
    music = ActionVocabulary.for_domain("music")
    assert music.is_positive("like") and not music.is_positive("skip")
    custom = ActionVocabulary.for_domain("video", {"share": 3.0})
    assert custom.weight("share") == 3.0 and "watch" in custom
    with pytest.raises(SchemaError, match="domain"):
        ActionVocabulary.for_domain("cooking")
