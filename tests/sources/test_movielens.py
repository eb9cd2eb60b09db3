"""MovieLens releases (``streamrec/sources/_movielens.py``): ratings as video events, movies as items."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from sourceskit import FIXTURES, VIDEO, event_ids

from streamrec.errors import SourceError
from streamrec.sources import iter_log_records, read_log


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


def test_directory_without_ratings_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no ratings file.*u.data.*ratings.dat.*ratings.csv"):
        read_log(tmp_path, VIDEO)


def test_movielens_limit_and_streaming() -> None:
    log = read_log(FIXTURES / "ml-100k", VIDEO, limit=2)
    assert [event.event_id for event in log.events] == ["3:2:881250000000", "7:1:881250949000"]
    assert len(log.items) == 4
    location, record = next(iter_log_records(FIXTURES / "ml-1m", "movielens", None))
    assert location == "ratings.dat:1"
    assert record["event_id"] == "1:10:978300760000" and record["action"] == "like"



def test_ratings_without_their_movies_file_load_alone_and_a_warning_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(FIXTURES / "ml-1m" / "ratings.dat", tmp_path / "ratings.dat")
    with caplog.at_level(logging.WARNING, logger="streamrec.sources"):
        log = read_log(tmp_path, VIDEO)
    assert len(log.events) == 3 and log.items == []
    assert "MovieLens ml-1m: no movies.dat next to the ratings" in caplog.text


def test_a_genre_list_with_gaps_is_a_source_error(tmp_path: Path) -> None:
    directory = tmp_path / "ml-100k"
    shutil.copytree(FIXTURES / "ml-100k", directory)
    (directory / "u.genre").write_text("unknown|0\nAction|1\nDrama|3\n", encoding="latin-1")
    with pytest.raises(SourceError, match=r"u\.genre'?: genre indices are not 0\.\.n-1"):
        read_log(directory, VIDEO)
