"""Reader of RecBole atomic files: ``<name>.inter`` as events, ``<name>.item`` as item text.

RecBole (recbole.io) ships some 40 public datasets in one layout: tab-separated files whose
header names each column with its type (``user_id:token``, ``timestamp:float``). The types
are dropped; the names are what ``column_map`` maps. Timestamps are seconds, RecBole's
convention (``timestamp_unit`` overrides). Interactions carry no action, so ``column_map``
names an action column or a ``default_action``. Other columns (a rating, a label) become
attributes.

Item text comes from ``<name>.item`` next to the interactions: the title is the first of
:data:`TITLE_COLUMNS` in its header, the category the first of :data:`CATEGORY_COLUMNS` (RecBole
writes lists as space-separated tokens, shown comma-separated); other columns become
attributes (a release year, a brand).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from streamrec.catalog import Item, plain_text
from streamrec.errors import SourceError
from streamrec.sources._common import (
    GZIP_ERRORS,
    Reject,
    _collector,
    _ColumnSpec,
    _open_text,
    _progress_lines,
    _Records,
)
from streamrec.sources._generic import _map_record

logger = logging.getLogger("streamrec.sources")

INTER_SUFFIX, ITEM_SUFFIX = ".inter", ".item"
TITLE_COLUMNS = ("title", "movie_title", "book_title", "name", "app_name", "track_name", "item_name")
CATEGORY_COLUMNS = ("genre", "genres", "class", "categories", "category", "tags")


def recbole_inter(path: Path) -> Path:
    """The interaction file of ``path``: the file itself, or the one ``.inter`` file of a directory."""
    if not path.is_dir():
        return path
    found = sorted(path.glob(f"*{INTER_SUFFIX}"))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise SourceError(f"RecBole directory {str(path)!r}: expected one {INTER_SUFFIX} file, found {names}")
    return found[0]


def is_recbole_directory(path: Path) -> bool:
    return path.is_dir() and any(path.glob(f"*{INTER_SUFFIX}"))


def atomic_rows(path: Path, needed: Sequence[str], reject: Reject,
                hint: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    """``(location, {column: value})`` of a RecBole atomic file, read line by line.

    A missing file or a header without a ``needed`` column raises :class:`SourceError` (with
    ``hint`` appended); a row with the wrong number of values goes to ``reject``.
    """
    if not path.is_file():
        raise SourceError(f"RecBole atomic file {str(path)!r} is missing")
    with _open_text(path, "utf-8-sig") as fh:
        lines = (line.rstrip("\r\n") for line in _progress_lines(fh, path))
        line_no = 1
        try:
            header = [column.partition(":")[0].strip() for column in next(lines, "").split("\t")]
            missing = [name for name in needed if name not in header]
            if missing:
                raise SourceError(f"{str(path)!r}: no {', '.join(missing)} column (columns: {', '.join(header)})"
                                  + hint)
            for line_no, line in enumerate(lines, 2):
                if not line:
                    continue
                values = line.split("\t")
                if len(values) != len(header):
                    reject(f"{path.name}:{line_no}", f"expected {len(header)} tab-separated values, got {len(values)}")
                    continue
                yield f"{path.name}:{line_no}", dict(zip(header, values, strict=True))
        except (UnicodeDecodeError, *GZIP_ERRORS) as exc:
            raise SourceError(f"{str(path)!r} after line {line_no}: unreadable ({type(exc).__name__}: {exc}); "
                              "expected UTF-8 text") from exc


def recbole_records(path: Path, spec: _ColumnSpec, reject: Reject) -> _Records:
    if "timestamp_unit" not in spec.explicit:
        spec = replace(spec, timestamp_unit="s")
    needed = [spec.columns[name] for name in ("user_id", "item_id", "timestamp")]
    if spec.default_action is None:
        needed.append(spec.columns["action"])
    hint = ("; map the file's columns with column_map (RecBole interactions carry no action: give an "
            "action column or a default_action, e.g. default_action=watch with the video domain)")
    for location, row in atomic_rows(recbole_inter(path), needed, reject, hint):
        yield location, _map_record(row, spec)


def recbole_items(path: Path, spec: _ColumnSpec, rejected: list[tuple[str, str]]) -> list[Item]:
    inter = recbole_inter(path)
    item_file = inter.with_name(inter.name.removesuffix(".gz").removesuffix(INTER_SUFFIX) + ITEM_SUFFIX)
    if not item_file.is_file():
        logger.warning("RecBole log %s: no %s next to it; loading events without item text", inter.name,
                       item_file.name)
        return []
    reject = _collector(rejected)
    id_column = spec.columns["item_id"]
    items: list[Item] = []
    title_column = category_column = None
    for location, row in atomic_rows(item_file, [id_column], reject):
        if title_column is None:  # every row has the header's columns: choose them once
            title_column = next((c for c in TITLE_COLUMNS if c in row), None)
            category_column = next((c for c in CATEGORY_COLUMNS if c in row), None)
            if title_column is None:
                logger.warning("RecBole log %s: %s has none of the title columns %s; loading events without "
                               "item text", inter.name, item_file.name, ", ".join(TITLE_COLUMNS))
                return []
        if not row[id_column].strip() or not row[title_column].strip():
            reject(location, f"item {row[id_column]!r} has no title (columns tried: {', '.join(TITLE_COLUMNS)})")
            continue
        category = _category(row[category_column]) if category_column else ""
        used = {id_column, title_column, category_column}
        attributes = {k: v.strip() for k, v in row.items() if k not in used and v.strip()}
        items.append(Item(row[id_column].strip(), plain_text(row[title_column]), category, attributes))
    return items


def _category(value: str) -> str:
    """A token list (``Action Crime``) comma-separated; a value that has commas already, as it is."""
    return value.strip() if "," in value else ", ".join(value.split())
