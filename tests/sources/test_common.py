"""Plumbing shared by the readers (``streamrec/sources/_common.py``): the column map, timestamps, files."""

from __future__ import annotations

import gzip
from pathlib import Path

import msgpack
import pytest
from sourceskit import CSV_MAP, ECOMMERCE, FIXTURES

from streamrec.errors import SourceError
from streamrec.sources import read_log
from streamrec.sources._common import (
    _collector,
    _ColumnSpec,
    _open_binary,
    _open_text,
    _progress_bar,
    _progress_lines,
    _raise_reject,
    _suffix,
    _to_millis,
)


def test_unknown_column_map_key_and_bad_unit_raise() -> None:
    with pytest.raises(SourceError, match=r"unknown key.*'userid'"):
        read_log(FIXTURES / "events.csv", ECOMMERCE, column_map={"userid": "uid"})
    with pytest.raises(SourceError, match=r"timestamp_unit"):
        read_log(FIXTURES / "events.csv", ECOMMERCE, column_map={**CSV_MAP, "timestamp_unit": "us"})



def test_a_column_map_names_our_fields_and_carries_the_options() -> None:
    spec = _ColumnSpec.parse({"user_id": "visitorid", "timestamp_unit": "s", "default_action": "view",
                              "metadata": "meta.jsonl"})
    assert spec.columns == {"user_id": "visitorid", "item_id": "item_id", "action": "action",
                            "timestamp": "timestamp", "event_id": "event_id"}  # unmapped fields keep our names
    assert spec.explicit == {"user_id", "timestamp_unit", "default_action", "metadata"}
    assert (spec.timestamp_unit, spec.default_action, spec.metadata) == ("s", "view", Path("meta.jsonl"))
    assert "visitorid" in spec.used_columns and "user_id" not in spec.used_columns
    default = _ColumnSpec.parse(None)
    assert (default.timestamp_unit, default.default_action, default.metadata, default.explicit) == (
        "ms", None, None, frozenset())
    assert _ColumnSpec.parse({"default_action": ""}).default_action is None  # an empty option is no option


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (1700000000, "s", 1700000000000), (1700000000123, "ms", 1700000000123),
    ("1700000000.5", "s", 1700000000500), (" 42 ", "ms", 42),
    (1.001, "s", 1001),  # 1000.999... ms rounds, not truncates
    (2.5, "ms", 2), (msgpack.Timestamp(10, 500_000_000), "s", 10_500),  # a msgpack timestamp is absolute
])
def test_numeric_timestamps_become_int_milliseconds(value: object, unit: str, expected: int) -> None:
    millis = _to_millis(value, unit)  # type: ignore[arg-type]
    assert millis == expected and type(millis) is int


@pytest.mark.parametrize("value", ["yesterday", True, None, [1], float("nan"), float("inf")])
def test_anything_else_passes_through_for_validation_to_reject(value: object) -> None:
    assert _to_millis(value, "s") is value


def test_suffix_looks_through_gz_and_ignores_case() -> None:
    assert [_suffix(Path(name)) for name in ("a.CSV", "a.jsonl.gz", "a.b.msgpack", "README", "x.gz")] == [
        ".csv", ".jsonl", ".msgpack", "", ""]


def test_text_and_bytes_open_gzip_transparently(tmp_path: Path) -> None:
    plain, packed = tmp_path / "log.csv", tmp_path / "log.csv.gz"
    plain.write_text("a,b\r\n1,2\r\n", encoding="utf-8")
    with gzip.open(packed, "wt", encoding="utf-8", newline="") as fh:
        fh.write("a,b\r\n1,2\r\n")
    for path in (plain, packed):
        with _open_text(path) as fh:
            assert fh.read() == "a,b\r\n1,2\r\n"  # newline="": the csv module sees the line ends as written
        with _open_binary(path) as raw:
            assert raw.read() == b"a,b\r\n1,2\r\n"


def test_rejects_are_collected_or_raised_with_their_location() -> None:
    rejected: list[tuple[str, str]] = []
    _collector(rejected)("log.csv:3", "4 values, but the header has 5 columns")
    assert rejected == [("log.csv:3", "4 values, but the header has 5 columns")]
    with pytest.raises(SourceError, match=r"^log\.csv:3: bad row$"):
        _raise_reject("log.csv:3", "bad row")


def test_only_big_files_get_a_progress_bar(tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    small.write_text("a\n" * 10)
    with _progress_bar(small) as bar:
        assert bar.disable and bar.total == small.stat().st_size
    assert list(_progress_lines(["a\n", "b\n"], small)) == ["a\n", "b\n"]  # lines pass through unchanged
