"""Fuzzed records on the items topic (``streamrec/kafka/items.py``, ``parse_item``), without a broker.

Any record (arbitrary bytes, any JSON or msgpack value, a valid item mutated) becomes an item
whose text can be written back to the topic, or a :class:`CatalogError`; every item read back
from what ``streamrec produce`` writes is the item written.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from fuzzkit import FUZZ, json_values, msgpack_values, mutated_bytes, mutated_tree, nested
from hypothesis import assume, given
from hypothesis import strategies as st

from streamrec.catalog import Item
from streamrec.errors import CatalogError
from streamrec.kafka.items import item_record, parse_item

ITEMS = [Item("7", "Teapot", "Kitchen", {"brand": "Acme"}), Item("8", "Salt & Pepper"),
         Item("é9", "Żuraw – The Crane", "Animation, Drama", {"year": "2012", "price": "9.5"})]
RECORDS = [item.to_dict() for item in ITEMS]
SEEDS = [item_record(item, fmt) for item in ITEMS for fmt in ("json", "msgpack")]
# Text as a catalogue holds it: no surrounding spaces, no HTML entity left to unescape.
text = st.text(min_size=1, max_size=30).map(str.strip).filter(lambda t: bool(t) and "&" not in t)
items = st.builds(Item, item_id=text, title=text, category=st.just("") | text,
                  attributes=st.dictionaries(st.text(max_size=10).filter(lambda k: k not in ("item_id", "title",
                                                                                              "category")),
                                             st.text(max_size=10), max_size=3))


def parsed(payload: bytes) -> Item | None:
    try:
        item = parse_item(payload)
    except CatalogError as exc:
        assert str(exc)
        return None
    assert all(isinstance(field, str) for field in (item.item_id, item.title, item.category))
    assert item.item_id and item.title.strip()
    for fmt in ("json", "msgpack"):
        again = parse_item(item_record(item, fmt))
        # A title that still holds an entity ("&amp;amp;" read once is "&amp;") is unescaped again.
        assert again == item or "&" in item.title + item.category
    return item


@FUZZ
@given(payload=st.binary(max_size=300) | mutated_bytes(SEEDS))
def test_arbitrary_or_mutated_bytes_become_an_item_or_a_catalog_error(payload: bytes) -> None:
    parsed(payload)


@FUZZ
@given(value=json_values | st.sampled_from(RECORDS).flatmap(mutated_tree), fmt=st.sampled_from(["json", "msgpack"]))
def test_any_value_or_mutated_record_becomes_an_item_or_a_catalog_error(value: Any, fmt: str) -> None:
    try:
        payload = json.dumps(value).encode() if fmt == "json" else msgpack.packb(value, use_bin_type=True)
    except (RecursionError, ValueError, TypeError, OverflowError):
        assume(False)
    parsed(payload)


@FUZZ
@given(value=msgpack_values)
def test_any_msgpack_value_becomes_an_item_or_a_catalog_error(value: Any) -> None:
    parsed(msgpack.packb(value, use_bin_type=True))


@FUZZ
@given(item=items, fmt=st.sampled_from(["json", "msgpack"]))
def test_an_item_written_to_the_topic_reads_back_the_same(item: Item, fmt: str) -> None:
    assert parse_item(item_record(item, fmt)) == item


@pytest.mark.parametrize(("payload", "message"), [
    (b'{"item_id": 1, "title": "\\ud800"}', "'title' is not valid Unicode text"),  # cannot be written back
    (b'{"item_id": 1, "title": "x", "\\udfff": "y"}', "is not valid Unicode text"),  # in an attribute's name
    (msgpack.packb({"item_id": 1, "title": nested(1000)}), "nested too deeply"),  # str() would overflow the stack
], ids=["lone-surrogate", "lone-surrogate-key", "title-1000-deep"])
def test_records_that_cannot_be_text_are_catalog_errors(payload: bytes, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_item(payload)


@pytest.mark.parametrize("payload", [b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b"\x81\x91\x01\x02"],
                         ids=["deep-json", "array-key"])
def test_undecodable_records_are_catalog_errors(payload: bytes) -> None:
    with pytest.raises(CatalogError):
        parse_item(payload)
