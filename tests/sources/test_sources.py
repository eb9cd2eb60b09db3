"""The package's public functions (``streamrec/sources/__init__.py``): read_log, iter_log_records, parse_column_map."""

from __future__ import annotations

import pytest
from sourceskit import CSV_MAP, ECOMMERCE, FIXTURES, JSONL_MAP, RECBOLE, event_ids

import streamrec.sources
from streamrec.errors import SourceError
from streamrec.events import event_from_mapping
from streamrec.sources import RecordedLog, iter_log_records, iter_recbole_rows, parse_column_map, read_log

# -- limit, streaming ------------------------------------------------------------------------


def test_limit_counts_valid_events_in_file_order_before_sorting() -> None:
    log = read_log(FIXTURES / "events.csv", ECOMMERCE, column_map=CSV_MAP, limit=3)
    assert event_ids(log) == ["e2", "e3", "e1"]
    assert read_log(FIXTURES / "events.csv", ECOMMERCE, column_map=CSV_MAP, limit=0).events == []
    with pytest.raises(SourceError, match=r"limit"):
        read_log(FIXTURES / "events.csv", ECOMMERCE, column_map=CSV_MAP, limit=-1)


def test_limit_stops_reading_early() -> None:
    log = read_log(FIXTURES / "events.csv", ECOMMERCE, column_map=CSV_MAP, limit=5)
    # The 5th valid event is on line 6; the bad rows after it are never read.
    assert len(log.events) == 5 and log.rejected == []


def test_iter_log_records_streams_unvalidated_records_in_file_order() -> None:
    rejected: list[tuple[str, str]] = []
    records = list(iter_log_records(FIXTURES / "events.csv", "auto", CSV_MAP, rejected=rejected))
    assert [location for location, _ in records][:2] == ["events.csv:2", "events.csv:3"]
    assert records[0][1] == {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i1",
        "action": "view",
        "timestamp": 3000,
        "attributes": {"source": "web"},
    }
    assert [r["event_id"] for _, r in records] == ["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e10"]
    assert rejected == [("events.csv:10", "4 values, but the header has 6 columns")]
    # Records validate with the ordinary event validation.
    assert event_from_mapping(records[0][1], ECOMMERCE).timestamp == 3000


def test_iter_log_records_without_rejected_list_raises_on_undecodable_records() -> None:
    records = iter_log_records(FIXTURES / "events.jsonl", "jsonl", JSONL_MAP)
    with pytest.raises(SourceError, match=r"events.jsonl:5: not valid JSON"):
        list(records)



# -- parse_column_map, iter_recbole_rows, the exported names ----------------------------------------


def test_parse_column_map_reads_the_clis_pairs() -> None:
    assert parse_column_map(None) is None and parse_column_map([]) is None
    assert parse_column_map(["user_id = visitorid", "timestamp_unit=s", "metadata=a=b.jsonl"]) == {
        "user_id": "visitorid", "timestamp_unit": "s", "metadata": "a=b.jsonl"}  # split at the first "="
    assert parse_column_map(["item_id=a", "item_id=b"]) == {"item_id": "b"}  # the last one wins
    with pytest.raises(SourceError, match=r"--column 'userid': expected ours=theirs"):
        parse_column_map(["userid"])


def test_iter_recbole_rows_streams_one_atomic_file_without_its_types() -> None:
    rejected: list[tuple[str, str]] = []
    rows = list(iter_recbole_rows(RECBOLE / "shop.inter", ["user_id", "timestamp"], rejected=rejected))
    assert rows[0] == ("shop.inter:2", {"user_id": "u1", "item_id": "p2", "rating": "5.0", "timestamp": "1700000060"})
    assert [location for location, _ in rows] == ["shop.inter:2", "shop.inter:3", "shop.inter:6"]
    assert rejected == [("shop.inter:4", "expected 4 tab-separated values, got 3")]
    with pytest.raises(SourceError, match=r"shop\.inter:4: expected 4 tab-separated values"):
        list(iter_recbole_rows(RECBOLE / "shop.inter", ["user_id"]))
    with pytest.raises(SourceError, match=r"no genre column \(columns: item_id, title, categories, brand\)"):
        list(iter_recbole_rows(RECBOLE / "shop.item", ["item_id", "genre"]))
    with pytest.raises(SourceError, match="is missing"):
        list(iter_recbole_rows(RECBOLE / "shop.user", ["user_id"]))


def test_the_exported_names() -> None:
    assert sorted(streamrec.sources.__all__) == [
        "LogFormat", "RecordedLog", "detect_format", "iter_log_records", "iter_recbole_rows", "parse_column_map",
        "read_log"]
    assert all(hasattr(streamrec.sources, name) for name in streamrec.sources.__all__)
    assert RecordedLog([]) == RecordedLog(events=[], items=[], rejected=[], domain=None)
