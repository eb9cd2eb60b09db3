"""Log formats (``streamrec/sources/_formats.py``): a log's format from its path or name, the vocabulary it needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sourceskit import ECOMMERCE, FIXTURES, JSONL_MAP, RECBOLE, VIDEO

from streamrec.errors import SourceError
from streamrec.sources import detect_format, read_log

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


def test_recbole_files_and_directories_are_detected() -> None:
    assert detect_format(RECBOLE) == "recbole"
    assert detect_format(RECBOLE / "shop.inter") == "recbole"
    assert detect_format(FIXTURES / "ml-1m") == "movielens"  # MovieLens ratings win


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



# -- a format by name ------------------------------------------------------------------------


def test_unknown_log_format_name_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"unknown log format 'xml'"):
        read_log(FIXTURES / "events.csv", ECOMMERCE, log_format="xml")  # type: ignore[arg-type]


def test_movielens_format_on_a_file_raises() -> None:
    with pytest.raises(SourceError, match=r"expected a directory"):
        read_log(FIXTURES / "events.csv", VIDEO, log_format="movielens")



# -- the vocabulary a format needs -------------------------------------------------------------


def test_movielens_needs_the_video_vocabulary() -> None:
    with pytest.raises(SourceError, match=r"MovieLens needs the video domain"):
        read_log(FIXTURES / "ml-100k", ECOMMERCE)


def test_amazon_needs_the_ecommerce_vocabulary() -> None:
    with pytest.raises(SourceError, match=r"Amazon reviews need the ecommerce domain"):
        read_log(FIXTURES / "amazon-2023" / "All_Beauty.jsonl", VIDEO)


def test_default_action_outside_the_vocabulary_raises() -> None:
    with pytest.raises(SourceError, match=r"default_action 'watch'"):
        read_log(FIXTURES / "events.jsonl", ECOMMERCE, column_map={**JSONL_MAP, "default_action": "watch"})

