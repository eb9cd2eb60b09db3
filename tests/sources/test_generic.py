"""Generic logs (``streamrec/sources/_generic.py``): CSV or TSV with a header row, JSON lines, msgpack streams.

The fixtures under tests/fixtures/sources/ are tiny invented logs in each format (no real
MovieLens or Amazon data); msgpack and gzip logs are written into tmp_path by the tests.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgpack
import pytest
from sourceskit import CSV_MAP, ECOMMERCE, FIXTURES, JSONL_MAP, event_ids, rejected_at

from streamrec.errors import SourceError
from streamrec.sources import read_log

# -- generic CSV -----------------------------------------------------------------------------


def test_csv_events_are_sorted_by_time_and_ties_keep_file_order() -> None:
    log = read_log(FIXTURES / "events.csv", ECOMMERCE, column_map=CSV_MAP)
    assert event_ids(log) == ["e10", "e2", "e5", "e3", "e4", "e1"]
    assert [event.timestamp for event in log.events] == [500, 1000, 1500, 2000, 2000, 3000]
    assert log.items == []
    assert log.domain is None


def test_csv_maps_columns_and_keeps_extra_columns_as_attributes() -> None:
    log = read_log(FIXTURES / "events.csv", ECOMMERCE, column_map=CSV_MAP)
    first = log.events[0]
    assert (first.user_id, first.item_id, first.action, first.event_id) == ("u5", "i6", "click", "e10")
    assert first.attributes == {"source": "web"}
    # An empty cell is no attribute at all.
    assert next(e for e in log.events if e.event_id == "e5").attributes == {}


def test_csv_float_timestamp_strings_become_int_ms() -> None:
    log = read_log(FIXTURES / "events.csv", ECOMMERCE, column_map=CSV_MAP)
    e5 = next(event for event in log.events if event.event_id == "e5")
    assert e5.timestamp == 1500 and isinstance(e5.timestamp, int)


def test_csv_bad_rows_are_rejected_with_their_line_while_good_rows_load() -> None:
    log = read_log(FIXTURES / "events.csv", ECOMMERCE, column_map=CSV_MAP)
    rejected = rejected_at(log)
    assert list(rejected) == ["events.csv:7", "events.csv:8", "events.csv:9", "events.csv:10"]
    assert "timestamp" in rejected["events.csv:7"] and "yesterday" in rejected["events.csv:7"]
    assert "teleport" in rejected["events.csv:8"] and "purchase" in rejected["events.csv:8"]
    assert "user_id" in rejected["events.csv:9"] and "required" in rejected["events.csv:9"]
    assert "4 values" in rejected["events.csv:10"]
    assert len(log.events) == 6


def test_csv_without_a_mapped_column_fails_at_once() -> None:
    with pytest.raises(SourceError, match=r"no column 'user_id' for user_id.*column_map"):
        read_log(FIXTURES / "events.csv", ECOMMERCE)


def test_csv_without_action_column_uses_default_action(tmp_path: Path) -> None:
    path = tmp_path / "views.tsv"
    path.write_text("user_id\titem_id\ttimestamp\n1\t2\t1700000000.5\n", encoding="utf-8")
    log = read_log(path, ECOMMERCE, column_map={"default_action": "view", "timestamp_unit": "s"})
    (event,) = log.events
    assert (event.user_id, event.item_id, event.action, event.timestamp) == ("1", "2", "view", 1700000000500)


def test_csv_that_is_not_utf8_raises_source_error(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"user_id,item_id,action,timestamp\n\xff\xfe\x00\x01,2,view,3\n")
    with pytest.raises(SourceError, match=r"log.csv.*UTF-8"):
        read_log(path, ECOMMERCE)


def test_empty_csv_raises_source_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SourceError, match=r"empty.csv.*header row"):
        read_log(path, ECOMMERCE)



# -- generic JSON lines ----------------------------------------------------------------------


def test_jsonl_seconds_unit_default_action_and_nested_attributes() -> None:
    log = read_log(FIXTURES / "events.jsonl", ECOMMERCE, column_map=JSONL_MAP)
    summary = [(e.user_id, e.item_id, e.action, e.timestamp) for e in log.events]
    assert summary == [
        ("u2", "11", "view", 1500),
        ("u3", "12", "view", 2000),
        ("u5", "14", "cart", 2000),  # its own action wins over the default; tie keeps file order
        ("u1", "10", "view", 3000),
    ]
    by_user = {event.user_id: event for event in log.events}
    assert by_user["u1"].attributes == {"device": "tv"}
    assert by_user["u2"].attributes == {"campaign": "spring"}


def test_jsonl_bad_lines_are_rejected_with_their_line() -> None:
    log = read_log(FIXTURES / "events.jsonl", ECOMMERCE, column_map=JSONL_MAP)
    rejected = rejected_at(log)
    assert list(rejected) == ["events.jsonl:5", "events.jsonl:6", "events.jsonl:7", "events.jsonl:9"]
    assert "not valid JSON" in rejected["events.jsonl:5"]
    assert "got list" in rejected["events.jsonl:6"]
    assert "timestamp" in rejected["events.jsonl:7"] and "True" in rejected["events.jsonl:7"]
    assert "user_id" in rejected["events.jsonl:9"]


def test_json_array_file_raises_source_error(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{"user_id": "u", "item_id": "i", "action": "view", "timestamp": 1}]))
    with pytest.raises(SourceError, match=r"JSON array.*JSON lines"):
        read_log(path, ECOMMERCE)


def test_file_with_no_json_object_raises_source_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("user_id,item_id\nu,i\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"events.jsonl.*expected JSON lines"):
        read_log(path, ECOMMERCE)


def test_gzipped_jsonl_is_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"user_id": "u", "item_id": "i", "action": "click", "timestamp": 7}\n')
    (event,) = read_log(path, ECOMMERCE).events
    assert (event.user_id, event.action, event.timestamp) == ("u", "click", 7)



# -- msgpack ---------------------------------------------------------------------------------


def write_msgpack(path: Path, values: list[object], tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(msgpack.packb(value, use_bin_type=True) for value in values) + tail)
    return path


def test_msgpack_stream_of_maps(tmp_path: Path) -> None:
    path = write_msgpack(
        tmp_path / "events.msgpack",
        [
            {"u": "a", "i": 1, "a": "view", "t": 20, "shelf": 3},
            {"u": "b", "i": 2, "a": "cart", "t": msgpack.Timestamp(0, 10_000_000)},
            ["not", "a", "map"],
            {"u": "c", "i": 3, "a": "view", "t": "oops"},
        ],
        tail=msgpack.packb({"u": "d", "i": 4, "a": "view", "t": 30})[:-2],
    )
    column_map = {"user_id": "u", "item_id": "i", "action": "a", "timestamp": "t"}
    log = read_log(path, ECOMMERCE, column_map=column_map)
    assert [(e.user_id, e.item_id, e.timestamp) for e in log.events] == [("b", "2", 10), ("a", "1", 20)]
    assert log.events[1].attributes == {"shelf": 3}
    rejected = rejected_at(log)
    assert list(rejected) == ["events.msgpack#3", "events.msgpack#4", "events.msgpack#5"]
    assert "msgpack map" in rejected["events.msgpack#3"]
    assert "oops" in rejected["events.msgpack#4"]
    assert "truncated" in rejected["events.msgpack#5"]


def test_msgpack_garbage_raises_source_error(tmp_path: Path) -> None:
    path = tmp_path / "events.mpk"
    path.write_bytes(msgpack.packb({"user_id": "u"}) + b"\xc1\xc1\xc1")
    with pytest.raises(SourceError, match=r"events.mpk.*not a msgpack stream"):
        read_log(path, ECOMMERCE)



# -- the order column ------------------------------------------------------------------------


def _day_log(tmp_path: Path, rows: list[str]) -> Path:
    """A TSV log shaped like a review log: whole-day timestamps, a per-user position column."""
    path = tmp_path / "days.tsv"
    path.write_text("user_id\titem_id\ttimestamp\tseq_pos\n" + "".join(row + "\n" for row in rows))
    return path


def test_the_order_column_orders_events_that_share_a_timestamp(tmp_path: Path) -> None:
    # File order is not time order: u1's same-day items are written last first.
    path = _day_log(tmp_path, ["u1\tc\t86400\t2", "u1\tb\t86400\t1", "u1\ta\t86400\t0", "u2\tz\t0\t0"])
    spec = {"default_action": "purchase", "timestamp_unit": "s"}
    plain = read_log(path, ECOMMERCE, column_map=spec)
    ordered = read_log(path, ECOMMERCE, column_map={**spec, "order": "seq_pos"})
    assert [e.item_id for e in plain.events] == ["z", "c", "b", "a"]  # ties in file order
    assert [e.item_id for e in ordered.events] == ["z", "a", "b", "c"]
    assert ordered.events[1].attributes == {"seq_pos": "0"}  # the column stays an attribute
    # The timestamp still comes first: a later day never moves before an earlier one.
    later = _day_log(tmp_path, ["u1\tlate\t172800\t0", "u1\tearly\t86400\t5"])
    assert [e.item_id for e in read_log(later, ECOMMERCE, column_map={**spec, "order": "seq_pos"}).events] == [
        "early", "late"]


def test_an_order_value_that_is_not_a_number_is_rejected_and_the_rest_loads(tmp_path: Path) -> None:
    path = _day_log(tmp_path, ["u1\ta\t1\t0", "u1\tb\t1\tsecond", "u1\tc\t1\t", "u1\td\t1\t1"])
    log = read_log(path, ECOMMERCE, column_map={"default_action": "purchase", "order": "seq_pos"})
    assert [e.item_id for e in log.events] == ["a", "d"]
    rejected = rejected_at(log)
    assert list(rejected) == ["days.tsv:3", "days.tsv:4"]
    assert "'seq_pos'" in rejected["days.tsv:3"] and "'second'" in rejected["days.tsv:3"]
    assert "a number" in rejected["days.tsv:4"]


def test_an_order_column_the_file_lacks_fails_at_once(tmp_path: Path) -> None:
    path = _day_log(tmp_path, ["u1\ta\t1\t0"])
    with pytest.raises(SourceError, match=r"no column 'position' for order"):
        read_log(path, ECOMMERCE, column_map={"default_action": "purchase", "order": "position"})
