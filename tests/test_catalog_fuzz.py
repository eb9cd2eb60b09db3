"""Fuzzed item records and item files (``streamrec/catalog.py``).

:func:`item_from_mapping` turns any value (a map with any fields, or no map at all) into an item
of text or a :class:`CatalogError`; :func:`read_items` reads a CSV, TSV or JSON-lines file with
any bytes in it into items or a :class:`CatalogError` that names the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from fuzzkit import FUZZ, FUZZ_FILES, json_values, msgpack_values, mutated_bytes, mutated_tree, nested
from hypothesis import given
from hypothesis import strategies as st

from streamrec.catalog import Item, item_from_mapping, read_items
from streamrec.errors import CatalogError

RECORDS: list[dict[str, Any]] = [{"item_id": "7", "title": "Teapot", "category": "Kitchen", "brand": "Acme"},
                                 {"item_id": 8, "title": "Salt &amp; Pepper", "attributes": {"year": 2012}},
                                 {"sku": "é9", "name": "Żuraw", "kind": "Drama"}]
COLUMN_MAPS = st.sampled_from([None, {"item_id": "sku", "title": "name", "category": "kind"}])
ROWS = [("7", "Teapot", "Kitchen", "Acme"), ("8", "Salt &amp; Pepper", "", ""), ("é9", "Żuraw, The Crane", "Drama", "")]
FILES = {
    ".csv": ("item_id,title,category,brand\n" + "".join(f'{i},"{t}",{c},{b}\n' for i, t, c, b in ROWS)).encode(),
    ".tsv": ("item_id\ttitle\tcategory\tbrand\n" + "".join("\t".join(row) + "\n" for row in ROWS)).encode(),
    ".jsonl": "".join(json.dumps({"item_id": i, "title": t, "category": c, "attributes": {"brand": b}},
                                 ensure_ascii=False) + "\n" for i, t, c, b in ROWS).encode(),
}


def assert_text(item: Item) -> None:
    """What the encoder and the items topic need: non-empty id and title, all of it UTF-8 text."""
    assert item.item_id and item.title.strip()
    for text in (item.item_id, item.title, item.category, *item.attributes, *item.attributes.values()):
        assert isinstance(text, str)
        text.encode()


@FUZZ
@given(row=json_values | msgpack_values | st.sampled_from(RECORDS).flatmap(mutated_tree), column_map=COLUMN_MAPS)
def test_any_record_becomes_an_item_of_text_or_a_catalog_error(row: Any, column_map: dict[str, str] | None) -> None:
    try:
        item = item_from_mapping(row, column_map)
    except CatalogError as exc:
        assert str(exc)
        return
    assert_text(item)


@FUZZ_FILES
@given(suffix_and_data=st.sampled_from(sorted(FILES)).flatmap(
    lambda suffix: st.tuples(st.just(suffix), mutated_bytes([FILES[suffix]]))))
def test_an_item_file_with_any_bytes_reads_as_items_or_a_catalog_error(
        tmp_path_factory: pytest.TempPathFactory, suffix_and_data: tuple[str, bytes]) -> None:
    suffix, data = suffix_and_data
    path = tmp_path_factory.mktemp("items") / f"items{suffix}"
    path.write_bytes(data)
    try:
        items = list(read_items(path))
    except CatalogError as exc:
        assert str(exc)
        return
    for item in items:
        assert_text(item)


@pytest.mark.parametrize(("name", "data", "message"), [
    ("items.jsonl", b"[1, 2]\n", "item record is not a map: list"),
    ("items.jsonl", b'{"item_id": 1, "title": "x"}\n' + b"[" * 100_000 + b"\n", r"items\.jsonl:2: not JSON"),
    ("items.jsonl", b'{"item_id": 1, "title": "x"}\n\xff\n', "not UTF-8 text"),
    ("items.jsonl", b'{"item_id": 1, "title": "\\ud800"}\n', "'title' is not valid Unicode text"),
    ("items.csv", b'item_id,title\n1,"' + b"x" * 200_000 + b'"\n', "field larger than field limit"),
    ("items.csv", b"item_id,title\n1,\xff\n", "expected UTF-8 CSV"),
], ids=["not-a-map", "deep-json", "not-utf8", "lone-surrogate", "huge-field", "csv-not-utf8"])
def test_files_that_once_crashed_the_reader_are_catalog_errors(tmp_path: Path, name: str, data: bytes,
                                                              message: str) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(CatalogError, match=message):
        list(read_items(tmp_path / name))


@pytest.mark.parametrize("title", ["&nbsp;", " &#32; ", "\t"])
def test_a_title_that_is_only_space_once_unescaped_is_no_title(title: str) -> None:
    with pytest.raises(CatalogError, match="has no 'title'"):
        item_from_mapping({"item_id": "7", "title": title})


def test_a_title_nested_too_deeply_to_print_is_a_catalog_error() -> None:
    row = msgpack.unpackb(msgpack.packb({"item_id": 1, "title": nested(1000)}), strict_map_key=False)
    with pytest.raises(CatalogError, match="nested too deeply"):
        item_from_mapping(row)
