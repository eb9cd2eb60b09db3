"""Tests for streamrec.sources: recorded-log readers.

The fixtures under tests/fixtures/sources/ are tiny invented logs in each format (no real
MovieLens or Amazon data); msgpack and gzip logs are written into tmp_path by the tests.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import pytest

from streamrec.errors import SourceError
from streamrec.events import ActionVocabulary, event_from_mapping
from streamrec.sources import RecordedLog, detect_format, iter_log_records, read_log

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
ECOMMERCE = ActionVocabulary.for_domain("ecommerce")
VIDEO = ActionVocabulary.for_domain("video")

CSV_MAP = {"event_id": "eid", "user_id": "uid", "item_id": "product", "action": "kind", "timestamp": "ts"}
JSONL_MAP = {
    "user_id": "user",
    "item_id": "item",
    "timestamp": "time",
    "timestamp_unit": "s",
    "default_action": "view",
}


def event_ids(log: RecordedLog) -> list[str | None]:
    return [event.event_id for event in log.events]


def rejected_at(log: RecordedLog) -> dict[str, str]:
    return dict(log.rejected)


# -- detect_format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("log.csv", "csv"),
        ("log.TSV", "csv"),
        ("log.jsonl", "jsonl"),
        ("log.ndjson", "jsonl"),
        ("log.json", "jsonl"),
        ("log.jsonl.gz", "jsonl"),
        ("log.msgpack", "msgpack"),
        ("log.mpk", "msgpack"),
    ],
)
def test_detect_format_goes_by_extension(tmp_path: Path, name: str, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert detect_format(path) == expected


def test_detect_format_directory_is_movielens() -> None:
    assert detect_format(FIXTURES / "ml-100k") == "movielens"


def test_detect_format_recognises_amazon_reviews_of_both_releases() -> None:
    assert detect_format(FIXTURES / "amazon-2023" / "All_Beauty.jsonl") == "amazon"
    assert detect_format(FIXTURES / "amazon-2018" / "Books_5.json") == "amazon"
    # Metadata and generic event logs are plain JSON lines.
    assert detect_format(FIXTURES / "amazon-2023" / "meta_All_Beauty.jsonl") == "jsonl"
    assert detect_format(FIXTURES / "events.jsonl") == "jsonl"


def test_missing_path_raises_source_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(SourceError, match=r"nowhere.csv.*does not exist"):
        read_log(missing, ECOMMERCE)
    with pytest.raises(SourceError, match=r"nowhere.csv"):
        read_log(missing, ECOMMERCE, log_format="csv")


def test_unknown_extension_raises_source_error_listing_formats(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(SourceError, match=r"log.parquet.*expected .*\.csv.*\.jsonl.*\.msgpack"):
        read_log(path, ECOMMERCE)


def test_unknown_log_format_name_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"unknown log format 'xml'"):
        read_log(FIXTURES / "events.csv", ECOMMERCE, log_format="xml")  # type: ignore[arg-type]


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


# -- limit, streaming, options ---------------------------------------------------------------


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


def test_unknown_column_map_key_and_bad_unit_raise() -> None:
    with pytest.raises(SourceError, match=r"unknown key.*'userid'"):
        read_log(FIXTURES / "events.csv", ECOMMERCE, column_map={"userid": "uid"})
    with pytest.raises(SourceError, match=r"timestamp_unit"):
        read_log(FIXTURES / "events.csv", ECOMMERCE, column_map={**CSV_MAP, "timestamp_unit": "us"})


def test_default_action_outside_the_vocabulary_raises() -> None:
    with pytest.raises(SourceError, match=r"default_action 'watch'"):
        read_log(FIXTURES / "events.jsonl", ECOMMERCE, column_map={**JSONL_MAP, "default_action": "watch"})


# -- MovieLens -------------------------------------------------------------------------------


def test_ml100k_ratings_become_video_events() -> None:
    log = read_log(FIXTURES / "ml-100k", VIDEO)
    assert log.domain == "video"
    summary = [(e.user_id, e.item_id, e.action, e.timestamp, e.attributes["rating"]) for e in log.events]
    assert summary == [
        ("3", "2", "watch", 881250000000, "3"),
        ("7", "3", "like", 881250000000, "5"),  # same second as the line before it: file order
        ("5", "2", "watch", 881250500000, "2"),
        ("7", "1", "like", 881250949000, "4"),  # 4 stars is already a like
        ("5", "4", "watch", 881251000000, "1"),
    ]
    assert log.events[0].event_id == "3:2:881250000000"
    assert log.rejected == [("u.data:5", "expected user\titem\trating\ttimestamp, got '3\\t1\\tfive\\t881252000'")]


def test_ml100k_items_have_genre_categories_latin1_titles_and_years() -> None:
    items = {item.item_id: item for item in read_log(FIXTURES / "ml-100k", VIDEO).items}
    assert len(items) == 4
    assert items["1"].title == "Robot Garden (1994)"
    assert items["1"].category == "Animation, Children's, Comedy"
    assert items["2"].title == "Café Noir (1997)"
    assert items["2"].category == "Crime, Film-Noir"
    assert items["1"].attributes == {"year": "1994"}
    # No year in the title: the release date gives it.
    assert items["3"].attributes == {"year": "1996"}


def test_ml100k_without_u_genre_uses_the_standard_genres(tmp_path: Path) -> None:
    directory = tmp_path / "ml-100k"
    shutil.copytree(FIXTURES / "ml-100k", directory)
    (directory / "u.genre").unlink()
    items = {item.item_id: item for item in read_log(directory, VIDEO).items}
    assert items["4"].category == "Drama, Romance"


def test_ml1m_layout() -> None:
    log = read_log(FIXTURES / "ml-1m", VIDEO)
    assert [(e.user_id, e.item_id, e.action, e.timestamp) for e in log.events] == [
        ("2", "20", "watch", 978300000000),
        ("1", "20", "like", 978300000000),
        ("1", "10", "like", 978300760000),
    ]
    items = {item.item_id: item for item in log.items}
    assert items["10"].title == "Amélie Express (2001)"
    assert items["10"].category == "Comedy, Romance"
    assert items["20"].title == "Wolves of Ñandú (1999)"
    assert items["20"].category == "Adventure, Children's"


def test_ml_latest_layout_with_half_star_ratings() -> None:
    log = read_log(FIXTURES / "ml-latest-small", VIDEO)
    by_item = {event.item_id: event for event in log.events}
    assert (by_item["1"].action, by_item["1"].attributes) == ("watch", {"rating": "3.5"})
    assert (by_item["2"].action, by_item["2"].attributes) == ("like", {"rating": "4.5"})
    assert by_item["2"].timestamp == 1147868817000
    assert event_ids(log) == ["1:2:1147868817000", "2:3:1147868828000", "1:1:1147880044000"]
    items = {item.item_id: item for item in log.items}
    assert items["1"].title == "Dinner, Interrupted (2010)"
    assert items["1"].category == "Comedy, Drama"
    assert items["2"].category == ""  # (no genres listed)
    assert items["2"].attributes == {}
    assert items["3"].title == "Żuraw – The Crane (2012)"


def test_movielens_shares_repeated_values_between_events() -> None:
    log = read_log(FIXTURES / "ml-100k", VIDEO)
    by_rating: dict[str, Mapping[str, Any]] = {}
    for event in log.events:
        shared = by_rating.setdefault(event.attributes["rating"], event.attributes)
        assert shared is event.attributes
    users = [event.user_id for event in log.events if event.user_id == "7"]
    assert users[0] is users[1]


def test_movielens_needs_the_video_vocabulary() -> None:
    with pytest.raises(SourceError, match=r"MovieLens needs the video domain"):
        read_log(FIXTURES / "ml-100k", ECOMMERCE)


def test_directory_without_ratings_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no ratings file.*u.data.*ratings.dat.*ratings.csv"):
        read_log(tmp_path, VIDEO)


def test_movielens_format_on_a_file_raises() -> None:
    with pytest.raises(SourceError, match=r"expected a directory"):
        read_log(FIXTURES / "events.csv", VIDEO, log_format="movielens")


def test_movielens_limit_and_streaming() -> None:
    log = read_log(FIXTURES / "ml-100k", VIDEO, limit=2)
    assert [event.event_id for event in log.events] == ["3:2:881250000000", "7:1:881250949000"]
    assert len(log.items) == 4
    location, record = next(iter_log_records(FIXTURES / "ml-1m", "movielens", None))
    assert location == "ratings.dat:1"
    assert record["event_id"] == "1:10:978300760000" and record["action"] == "like"


# -- Amazon reviews --------------------------------------------------------------------------


def test_amazon_2023_reviews_are_purchases_with_metadata_items() -> None:
    log = read_log(FIXTURES / "amazon-2023" / "All_Beauty.jsonl", ECOMMERCE)
    assert log.domain == "ecommerce"
    summary = [(e.user_id, e.item_id, e.action, e.timestamp, e.attributes) for e in log.events]
    assert summary == [
        ("UB", "P01", "purchase", 1588600000000, {"rating": "4.0"}),
        ("UB", "P02", "purchase", 1588615855070, {"rating": "2.0"}),
        ("UA", "P01", "purchase", 1588687728923, {"rating": "5.0"}),
    ]
    assert log.events[0].event_id == "UB:P01:1588600000000"
    assert [location for location, _ in log.rejected] == ["All_Beauty.jsonl:4"]
    # Only products the events mention; P99 is never reviewed.
    items = {item.item_id: item for item in log.items}
    assert sorted(items) == ["P01", "P02"]
    assert (items["P01"].title, items["P01"].category) == ("Rose Hand Cream", "All Beauty")
    assert items["P01"].attributes == {"store": "Petal Co", "price": "9.5"}
    assert items["P02"].category == "Beauty > Hair Care > Combs"


def test_amazon_2018_reviews_in_seconds_with_category_path() -> None:
    log = read_log(FIXTURES / "amazon-2018" / "Books_5.json", ECOMMERCE)
    assert [(e.user_id, e.item_id, e.timestamp) for e in log.events] == [
        ("R2", "0002", 1441238400000),
        ("R1", "0001", 1441324800000),
    ]
    (item,) = log.items
    assert (item.item_id, item.title) == ("0001", "Verses at Dusk")
    assert item.category == "Books > Literature & Fiction > Poetry"
    # The product without a title is reported, not loaded.
    assert log.rejected == [("meta_Books.json:2", "product '0002' has no title")]


def test_amazon_metadata_path_from_column_map(tmp_path: Path) -> None:
    reviews = tmp_path / "reviews.jsonl"
    shutil.copy(FIXTURES / "amazon-2023" / "All_Beauty.jsonl", reviews)
    assert read_log(reviews, ECOMMERCE).items == []  # nothing next to it
    meta = FIXTURES / "amazon-2023" / "meta_All_Beauty.jsonl"
    log = read_log(reviews, ECOMMERCE, log_format="amazon", column_map={"metadata": str(meta)})
    assert {item.item_id for item in log.items} == {"P01", "P02"}
    with pytest.raises(SourceError, match=r"metadata.*does not exist"):
        read_log(reviews, ECOMMERCE, column_map={"metadata": str(tmp_path / "meta.jsonl")})


def test_amazon_needs_the_ecommerce_vocabulary() -> None:
    with pytest.raises(SourceError, match=r"Amazon reviews need the ecommerce domain"):
        read_log(FIXTURES / "amazon-2023" / "All_Beauty.jsonl", VIDEO)


# -- RecBole atomic files --------------------------------------------------------------------

RECBOLE = FIXTURES / "recbole"


def test_recbole_files_and_directories_are_detected() -> None:
    assert detect_format(RECBOLE) == "recbole"
    assert detect_format(RECBOLE / "shop.inter") == "recbole"
    assert detect_format(FIXTURES / "ml-1m") == "movielens"  # MovieLens ratings win


def test_recbole_interactions_in_seconds_with_item_text() -> None:
    log = read_log(RECBOLE, ECOMMERCE, column_map={"default_action": "purchase"})
    assert log.domain is None  # RecBole datasets span domains: the caller picks the vocabulary
    summary = [(e.user_id, e.item_id, e.action, e.timestamp, e.attributes) for e in log.events]
    assert summary == [
        ("u2", "p1", "purchase", 1700000000500, {"rating": "3.0"}),
        ("u1", "p2", "purchase", 1700000060000, {"rating": "5.0"}),
        ("u2", "p3", "purchase", 1700000120000, {"rating": "1.0"}),
    ]
    items = {item.item_id: item for item in log.items}
    assert sorted(items) == ["p1", "p2"]
    assert (items["p1"].title, items["p1"].category, dict(items["p1"].attributes)) == (
        "Copper Kettle", "Kitchen, Tea", {"brand": "Acme"})
    assert (items["p2"].category, dict(items["p2"].attributes)) == ("Sports", {})
    assert log.rejected == [("shop.inter:4", "expected 4 tab-separated values, got 3"),
                            ("shop.item:4", "item 'p3' has no title (columns tried: title, movie_title, "
                                            "book_title, name, app_name, track_name, item_name)")]


def test_recbole_column_map_renames_ids_and_overrides_the_unit(tmp_path: Path) -> None:
    (tmp_path / "yelp.inter").write_text("user_id:token\tbusiness_id:token\tstars:float\tdate:float\n"
                                         "u1\tb1\t4\t1700000000000\n")
    (tmp_path / "yelp.item").write_text("business_id:token\tname:token_seq\tcategories:token_seq\n"
                                        "b1\tCorner Cafe\tCafes, Coffee & Tea\n")
    column_map = {"item_id": "business_id", "timestamp": "date", "timestamp_unit": "ms", "default_action": "view"}
    log = read_log(tmp_path / "yelp.inter", ECOMMERCE, column_map=column_map)
    assert [(e.item_id, e.timestamp, e.attributes) for e in log.events] == [("b1", 1700000000000, {"stars": "4"})]
    assert [(i.item_id, i.title, i.category) for i in log.items] == [("b1", "Corner Cafe", "Cafes, Coffee & Tea")]


def test_recbole_without_an_action_or_with_several_inter_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no action column.*default_action"):
        read_log(RECBOLE, ECOMMERCE)
    for name in ("a.inter", "b.inter"):
        shutil.copy(RECBOLE / "shop.inter", tmp_path / name)
    with pytest.raises(SourceError, match=r"expected one \.inter file, found a\.inter, b\.inter"):
        read_log(tmp_path, ECOMMERCE, column_map={"default_action": "view"})
    (tmp_path / "b.inter").unlink()
    log = read_log(tmp_path, ECOMMERCE, column_map={"default_action": "view"})  # no a.item: events only
    assert len(log.events) == 3 and log.items == []


def test_recbole_item_file_without_a_title_column_loads_events_only(tmp_path: Path) -> None:
    shutil.copy(RECBOLE / "shop.inter", tmp_path / "shop.inter")
    (tmp_path / "shop.item").write_text("item_id:token\tbrand:token\np1\tAcme\n")
    log = read_log(tmp_path, ECOMMERCE, column_map={"default_action": "view"})
    assert len(log.events) == 3 and log.items == [] and all(loc.startswith("shop.inter") for loc, _ in log.rejected)
