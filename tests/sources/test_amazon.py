"""Amazon reviews (``streamrec/sources/_amazon.py``): reviews as purchases, product metadata as items."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from sourceskit import ECOMMERCE, FIXTURES

from streamrec.errors import SourceError
from streamrec.sources import read_log


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



def test_one_metadata_file_beside_the_reviews_is_used_whatever_its_name(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "amazon-2023" / "All_Beauty.jsonl", tmp_path / "reviews.jsonl")
    shutil.copy(FIXTURES / "amazon-2023" / "meta_All_Beauty.jsonl", tmp_path / "meta_Something_Else.jsonl")
    log = read_log(tmp_path / "reviews.jsonl", ECOMMERCE)
    assert log.domain == "ecommerce" and sorted(item.item_id for item in log.items) == ["P01", "P02"]


def test_several_metadata_files_none_named_for_the_reviews_load_no_items_and_say_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(FIXTURES / "amazon-2023" / "All_Beauty.jsonl", tmp_path / "reviews.jsonl")
    for name in ("meta_A.jsonl", "meta_B.jsonl"):
        shutil.copy(FIXTURES / "amazon-2023" / "meta_All_Beauty.jsonl", tmp_path / name)
    with caplog.at_level(logging.WARNING, logger="streamrec.sources"):
        log = read_log(tmp_path / "reviews.jsonl", ECOMMERCE)
    assert len(log.events) == 3 and log.items == []
    assert "several metadata files and none named meta_reviews" in caplog.text and "column_map" in caplog.text


def test_a_2023_review_without_a_parent_asin_uses_its_asin(tmp_path: Path) -> None:
    reviews = tmp_path / "Toys.jsonl"
    reviews.write_text(json.dumps({"user_id": "U1", "asin": "B01", "parent_asin": None, "rating": 3.0,
                                   "timestamp": 1_600_000_000_000}) + "\n", encoding="utf-8")
    (event,) = read_log(reviews, ECOMMERCE, log_format="amazon").events
    assert (event.item_id, event.action, event.event_id) == ("B01", "purchase", "U1:B01:1600000000000")
