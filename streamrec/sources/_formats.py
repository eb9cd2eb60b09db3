"""Log formats: telling a log's format from its path, and handing it to the matching reader."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast, get_args

from streamrec.catalog import Item
from streamrec.errors import SourceError
from streamrec.events import ActionVocabulary, Event
from streamrec.sources._amazon import _amazon_items, _amazon_record, _looks_like_amazon
from streamrec.sources._common import Reject, _ColumnSpec, _Records, _suffix
from streamrec.sources._generic import _csv_records, _jsonl_objects, _map_record, _msgpack_objects
from streamrec.sources._movielens import _ML_LAYOUTS, _movielens_items, _movielens_layout, _movielens_records
from streamrec.sources._recbole import is_recbole_directory, recbole_items, recbole_records

LogFormat = Literal["auto", "csv", "jsonl", "msgpack", "movielens", "amazon", "recbole"]

# fmt: off
_SUFFIX_FORMATS: dict[str, LogFormat] = {
    ".csv": "csv", ".tsv": "csv",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".msgpack": "msgpack", ".mpk": "msgpack",
    ".inter": "recbole",
}
# fmt: on
_DOMAINS: dict[str, str] = {"movielens": "video", "amazon": "ecommerce"}
_NEEDED_ACTIONS: dict[str, tuple[str, ...]] = {
    "movielens": ("watch", "like"),
    "amazon": ("purchase",),
}


def detect_format(path: str | Path) -> LogFormat:
    """The format of ``path``: a directory is MovieLens, or RecBole when it holds a ``.inter``
    file and no MovieLens ratings; a file goes by its extension.

    A ``.gz`` ending is looked through. A JSON-lines file whose first record is an Amazon
    review (``reviewerID``/``asin``, or ``parent_asin`` and ``rating``) is ``"amazon"``.
    """
    path = Path(path)
    if path.is_dir():
        movielens = any((path / ratings).is_file() for _, ratings, *_ in _ML_LAYOUTS)
        return "recbole" if not movielens and is_recbole_directory(path) else "movielens"
    if not path.is_file():
        raise SourceError(f"log {str(path)!r} does not exist")
    log_format = _SUFFIX_FORMATS.get(_suffix(path))
    if log_format is None:
        raise SourceError(
            f"log {str(path)!r}: cannot tell the format from its extension; expected a MovieLens or "
            "RecBole directory or a .csv, .tsv, .jsonl, .ndjson, .json, .msgpack, .mpk or .inter file "
            "(or pass log_format)"
        )
    if log_format == "jsonl" and _looks_like_amazon(path):
        return "amazon"
    return log_format


def _resolve_format(path: Path, log_format: str) -> LogFormat:
    if log_format not in get_args(LogFormat):
        raise SourceError(f"unknown log format {log_format!r}; expected one of {', '.join(get_args(LogFormat))}")
    if log_format == "auto":
        return detect_format(path)
    if log_format == "movielens":
        if not path.is_dir():
            raise SourceError(f"MovieLens log {str(path)!r}: expected a directory (ml-100k, ml-1m, ml-latest, ...)")
    elif log_format == "recbole":
        if not (path.is_file() or is_recbole_directory(path)):
            raise SourceError(f"RecBole log {str(path)!r}: expected a .inter file or a directory holding one")
    elif not path.is_file():
        raise SourceError(f"{log_format} log {str(path)!r} does not exist or is not a file")
    return cast(LogFormat, log_format)


def _check_vocabulary(log_format: str, vocab: ActionVocabulary, spec: _ColumnSpec) -> None:
    """Fail before reading anything when no record of the log could pass validation."""
    missing = [action for action in _NEEDED_ACTIONS.get(log_format, ()) if action not in vocab]
    if missing:
        subject = "MovieLens needs" if log_format == "movielens" else "Amazon reviews need"
        raise SourceError(
            f"{subject} the {_DOMAINS[log_format]} domain: the vocabulary lacks {', '.join(map(repr, missing))}"
        )
    if spec.default_action is not None and spec.default_action not in vocab:
        raise SourceError(
            f"column_map: default_action {spec.default_action!r} is not in the vocabulary "
            f"({', '.join(sorted(vocab.weights))})"
        )


def _records(path: Path, log_format: LogFormat, spec: _ColumnSpec, reject: Reject) -> _Records:
    if log_format == "csv":
        return _csv_records(path, spec, reject)
    if log_format == "jsonl":
        return ((loc, _map_record(obj, spec)) for loc, obj in _jsonl_objects(path, reject))
    if log_format == "msgpack":
        return ((loc, _map_record(obj, spec)) for loc, obj in _msgpack_objects(path, reject))
    if log_format == "movielens":
        return _movielens_records(_movielens_layout(path), reject)
    if log_format == "recbole":
        return recbole_records(path, spec, reject)
    return ((loc, _amazon_record(obj)) for loc, obj in _jsonl_objects(path, reject))


def _load_items(
    path: Path,
    log_format: LogFormat,
    spec: _ColumnSpec,
    events: list[Event],
    rejected: list[tuple[str, str]],
) -> list[Item]:
    if log_format == "movielens":
        return _movielens_items(_movielens_layout(path), rejected)
    if log_format == "amazon":
        return _amazon_items(path, spec, events, rejected)
    if log_format == "recbole":
        return recbole_items(path, spec, rejected)
    return []
