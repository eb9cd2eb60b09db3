"""RecBole atomic files (``streamrec/sources/_recbole.py``): ``.inter`` as events, ``.item`` as item text."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import pytest
from sourceskit import ECOMMERCE, RECBOLE

from streamrec.errors import SourceError
from streamrec.sources import read_log


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



def test_a_gzipped_interaction_file_finds_its_item_file(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "shop.inter.gz", "wb") as fh:
        fh.write((RECBOLE / "shop.inter").read_bytes())
    shutil.copy(RECBOLE / "shop.item", tmp_path / "shop.item")
    log = read_log(tmp_path / "shop.inter.gz", ECOMMERCE, column_map={"default_action": "view"})
    assert len(log.events) == 3 and sorted(item.item_id for item in log.items) == ["p1", "p2"]


def test_without_an_item_file_events_load_alone_and_a_warning_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(RECBOLE / "shop.inter", tmp_path / "shop.inter")
    with caplog.at_level(logging.WARNING, logger="streamrec.sources"):
        log = read_log(tmp_path / "shop.inter", ECOMMERCE, column_map={"default_action": "view"})
    assert len(log.events) == 3 and log.items == []
    assert "no shop.item next to it" in caplog.text
