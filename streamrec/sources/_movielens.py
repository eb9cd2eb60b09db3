"""Reader of MovieLens releases (ml-100k, ml-1m, ml-latest): ratings as events, movies as items."""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from streamrec.catalog import Item
from streamrec.errors import CatalogError, SourceError
from streamrec.events import MAX_TIMESTAMP_MS
from streamrec.sources._common import Reject, _collector, _progress_lines, _Records

# The package's logger, as before the readers were split into modules.
logger = logging.getLogger("streamrec.sources")


@dataclass(frozen=True)
class _MovieLensLayout:
    """Where one MovieLens release keeps its ratings and movies, and how they are written."""

    name: str
    ratings: Path
    separator: str
    header: bool
    movies: Path


_ML_LAYOUTS = (  # name, ratings file, separator, header row?, movies file
    ("ml-100k", "u.data", "\t", False, "u.item"),
    ("ml-1m", "ratings.dat", "::", False, "movies.dat"),
    ("ml-latest", "ratings.csv", ",", True, "movies.csv"),
)

#: The genre order of ml-100k's u.item flag columns, used when u.genre is absent.
# fmt: off
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
# fmt: on
_ML100K_FIRST_FLAG = 5
_NO_GENRES = "(no genres listed)"
_YEAR_IN_TITLE = re.compile(r"\((\d{4})[^()]*\)\s*$")
_LIKE_FROM_RATING = 4.0


def _movielens_layout(directory: Path) -> _MovieLensLayout:
    for name, ratings, separator, header, movies in _ML_LAYOUTS:
        if (directory / ratings).is_file():
            return _MovieLensLayout(name, directory / ratings, separator, header, directory / movies)
    expected = ", ".join(ratings for _, ratings, *_ in _ML_LAYOUTS)
    raise SourceError(f"MovieLens directory {str(directory)!r} has no ratings file; expected one of {expected}")


def _movielens_records(layout: _MovieLensLayout, reject: Reject) -> _Records:
    """Ratings as records: 4 stars or more is a like, less a watch; seconds become ms."""
    sep = layout.separator
    # Ratings files hold only numbers; latin-1 decodes any byte, so it never fails.
    with layout.ratings.open(encoding="latin-1", newline="") as fh:
        lines = _progress_lines(fh, layout.ratings)
        if layout.header:
            next(lines, None)
        for line_no, line in enumerate(lines, 2 if layout.header else 1):
            parts = line.rstrip("\r\n").split(sep)
            if len(parts) != 4:
                if line.strip():
                    reject(f"{layout.ratings.name}:{line_no}", _bad_rating_message(line, sep))
                continue
            user, item, rating, seconds = parts
            try:
                stars = float(rating)
                millis = int(seconds) * 1000
            except ValueError:
                reject(f"{layout.ratings.name}:{line_no}", _bad_rating_message(line, sep))
                continue
            if millis > MAX_TIMESTAMP_MS:  # validation would reject it; its 4000 digits may not even print
                reject(f"{layout.ratings.name}:{line_no}", f"timestamp {seconds.strip()[:40]!r} s is past int64 ms")
                continue
            yield (
                f"{layout.ratings.name}:{line_no}",
                {
                    "user_id": user,
                    "item_id": item,
                    "action": "like" if stars >= _LIKE_FROM_RATING else "watch",
                    "timestamp": millis,
                    "event_id": f"{user}:{item}:{millis}",
                    "attributes": {"rating": rating.strip()},
                },
            )


def _bad_rating_message(line: str, sep: str) -> str:
    return f"expected user{sep}item{sep}rating{sep}timestamp, got {line.strip()[:80]!r}"


def _movielens_items(layout: _MovieLensLayout, rejected: list[tuple[str, str]]) -> list[Item]:
    if not layout.movies.is_file():
        logger.warning(
            "MovieLens %s: no %s next to the ratings; loading events without item text",
            layout.name,
            layout.movies.name,
        )
        return []
    reject = _collector(rejected)
    if layout.name == "ml-100k":
        rows = _ml100k_movies(layout.movies, _ml100k_genres(layout.movies.with_name("u.genre")), reject)
    elif layout.name == "ml-1m":
        rows = _ml1m_movies(layout.movies)
    else:
        rows = _mllatest_movies(layout.movies)
    items: list[Item] = []
    for location, fields in rows:
        try:
            items.append(_movie_item(*fields))
        except CatalogError as exc:
            reject(location, str(exc))
    return items


_MovieFields = tuple[str, str, list[str], str]  # movie id, title, genres, release date


def _movie_item(movie_id: str, title: str, genres: list[str], release: str) -> Item:
    if not movie_id.strip():
        raise CatalogError("movie without an id")
    if not title.strip():
        raise CatalogError(f"movie {movie_id!r} has no title")
    attributes: dict[str, str] = {}
    match = _YEAR_IN_TITLE.search(title)
    if match:
        attributes["year"] = match.group(1)
    elif release[-4:].isdigit():  # ml-100k release dates look like 01-Jan-1995
        attributes["year"] = release[-4:]
    # Genres stripped like the title: an item read back from the items topic has its text stripped.
    category = ", ".join(genre for genre in map(str.strip, genres) if genre and genre != _NO_GENRES)
    return Item(movie_id.strip(), title.strip(), category, attributes)


def _read_legacy_lines(path: Path) -> list[str]:
    """Lines of an old MovieLens text file: UTF-8 when it decodes, else latin-1 (ml-100k, ml-1m)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    # split("\n"), not splitlines(): latin-1 text may hold \x85, which splitlines() breaks on.
    return [line.rstrip("\r") for line in text.split("\n")]


def _ml100k_genres(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ML100K_GENRES
    by_index: dict[int, str] = {}
    for line in _read_legacy_lines(path):
        name, _, index = line.rpartition("|")
        index = index.strip()
        # isdecimal() and a length cap: isdigit() takes '²', and int() refuses over 4300 digits
        if name and index.isdecimal() and len(index) <= 9:
            by_index[int(index)] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise SourceError(f"{str(path)!r}: genre indices are not 0..n-1; expected lines like 'Action|1'")
    return tuple(by_index[i] for i in range(len(by_index)))


def _ml100k_movies(path: Path, genres: tuple[str, ...], reject: Reject) -> Iterator[tuple[str, _MovieFields]]:
    for line_no, line in enumerate(_read_legacy_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        flags = parts[_ML100K_FIRST_FLAG:]
        if len(flags) != len(genres):
            wanted = _ML100K_FIRST_FLAG + len(genres)
            reject(
                f"{path.name}:{line_no}",
                f"expected {wanted} '|'-separated fields, got {len(parts)}",
            )
            continue
        names = [genre for genre, flag in zip(genres, flags, strict=True) if flag.strip() == "1"]
        yield f"{path.name}:{line_no}", (parts[0], parts[1], names, parts[2])


def _ml1m_movies(path: Path) -> Iterator[tuple[str, _MovieFields]]:
    for line_no, line in enumerate(_read_legacy_lines(path), 1):
        if line.strip():
            movie_id, _, rest = line.partition("::")
            title, _, genres = rest.partition("::")
            yield f"{path.name}:{line_no}", (movie_id, title, genres.split("|"), "")


def _mllatest_movies(path: Path) -> Iterator[tuple[str, _MovieFields]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            for row in reader:
                genres = (row.get("genres") or "").split("|")
                yield (
                    f"{path.name}:{reader.line_num}",
                    (row.get("movieId") or "", row.get("title") or "", genres, ""),
                )
        except (UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(
                f"{str(path)!r} near line {max(reader.line_num, 1)}: unreadable ({exc}); "
                "expected UTF-8 CSV with a header row"
            ) from exc
