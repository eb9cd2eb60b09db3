"""Readers of generic logs: CSV (or TSV) with a header row, JSON lines and msgpack streams."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgpack

from streamrec.errors import SourceError
from streamrec.sources._common import (
    _PROGRESS_EVERY,
    GZIP_ERRORS,
    Reject,
    _ColumnSpec,
    _open_binary,
    _open_text,
    _progress_bar,
    _progress_lines,
    _Records,
    _suffix,
    _to_millis,
)


def _map_record(raw: Mapping[Any, Any], spec: _ColumnSpec) -> dict[str, Any]:
    """A raw record in our field names; unmapped columns become ``attributes``."""
    record: dict[str, Any] = {}
    for name, column in spec.columns.items():
        value = raw.get(column)
        if value is not None and value != "":
            record[name] = value
    if "action" not in record and spec.default_action is not None:
        record["action"] = spec.default_action
    if "timestamp" in record:
        record["timestamp"] = _to_millis(record["timestamp"], spec.timestamp_unit)
    used = spec.used_columns
    extras = {key: value for key, value in raw.items() if key not in used and value is not None and value != ""}
    nested = extras.get("attributes")
    if isinstance(nested, Mapping):
        # A log written from our own events carries its attributes as one nested map.
        del extras["attributes"]
        extras = {**nested, **extras}
    if extras:
        record["attributes"] = extras
    return record


def _csv_records(path: Path, spec: _ColumnSpec, reject: Reject) -> _Records:
    delimiter = "\t" if _suffix(path) == ".tsv" else ","
    with _open_text(path, "utf-8-sig") as fh:
        reader = csv.reader(_progress_lines(fh, path), delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise SourceError(f"CSV log {str(path)!r} is empty; expected a header row")
            header = [name.strip() for name in header]
            _check_header(path, header, spec)
            start = reader.line_num + 1
            for row in reader:
                location, start = f"{path.name}:{start}", reader.line_num + 1
                if not row:
                    continue
                if len(row) != len(header):
                    reject(location, f"{len(row)} values, but the header has {len(header)} columns")
                    continue
                yield location, _map_record(dict(zip(header, row, strict=True)), spec)
        except (UnicodeDecodeError, csv.Error, *GZIP_ERRORS) as exc:
            raise SourceError(
                f"CSV log {str(path)!r} near line {reader.line_num}: unreadable ({exc}); "
                "expected UTF-8 text with a header row"
            ) from exc


def _check_header(path: Path, header: list[str], spec: _ColumnSpec) -> None:
    """Fail at once when a needed column is absent, rather than rejecting every row."""
    needed = ["user_id", "item_id", "timestamp"]
    if spec.default_action is None:
        needed.append("action")
    if "event_id" in spec.explicit:
        needed.append("event_id")
    missing = [name for name in needed if spec.columns[name] not in header]
    if spec.order is not None and spec.order not in header:
        raise SourceError(
            f"CSV log {str(path)!r}: no column {spec.order!r} for order (columns: {', '.join(header)})"
        )
    if missing:
        wanted = ", ".join(f"{spec.columns[name]!r} for {name}" for name in missing)
        raise SourceError(
            f"CSV log {str(path)!r}: no column {wanted} (columns: {', '.join(header)}); "
            "map the file's columns with column_map" + ("" if "action" not in missing else " or give a default_action")
        )


def _jsonl_objects(path: Path, reject: Reject) -> _Records:
    """The JSON objects of a JSON-lines file, with their locations."""
    decoded = failed = 0
    with _open_text(path) as fh:
        try:
            for line_no, line in enumerate(_progress_lines(fh, path), 1):
                text = line.strip()
                if not text:
                    continue
                if decoded == failed == 0 and text.startswith("["):
                    raise SourceError(
                        f"log {str(path)!r} holds a JSON array; expected JSON lines (one object per line)"
                    )
                location = f"{path.name}:{line_no}"
                try:
                    obj = json.loads(text)
                except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the stack
                    failed += 1
                    reject(location, f"not valid JSON ({exc})")
                    continue
                if not isinstance(obj, dict):
                    failed += 1
                    reject(location, f"expected a JSON object, got {type(obj).__name__}")
                    continue
                decoded += 1
                yield location, obj
        except UnicodeDecodeError as exc:
            raise SourceError(f"log {str(path)!r}: not UTF-8 text ({exc}); expected JSON lines") from exc
        except GZIP_ERRORS as exc:
            raise SourceError(f"log {str(path)!r}: a damaged gzip file ({type(exc).__name__}: {exc})") from exc
    if failed and not decoded:
        raise SourceError(f"log {str(path)!r}: no line holds a JSON object; expected JSON lines (one object per line)")


def _msgpack_objects(path: Path, reject: Reject) -> Iterator[tuple[str, dict[Any, Any]]]:
    """The maps of a stream of msgpack values, located by their 1-based ordinal."""
    decoded = failed = 0
    with _open_binary(path) as fh, _progress_bar(path) as bar:
        unpacker = msgpack.Unpacker(fh, raw=False, strict_map_key=False)
        index, consumed = 0, 0
        try:
            for index, obj in enumerate(unpacker, 1):
                consumed = unpacker.tell()
                if index % _PROGRESS_EVERY == 0:
                    bar.update(fh.tell() - bar.n)
                if not isinstance(obj, dict):
                    failed += 1
                    reject(f"{path.name}#{index}", f"expected a msgpack map, got {type(obj).__name__}")
                    continue
                decoded += 1
                yield f"{path.name}#{index}", obj
        except (ValueError, TypeError) as exc:
            # Bad bytes (ValueError) or a map keyed by an array (TypeError): msgpack cannot
            # resynchronise after either, so the rest of the file is lost.
            raise SourceError(
                f"log {str(path)!r}: not a msgpack stream after record {index} ({type(exc).__name__}: {exc})"
            ) from exc
        except GZIP_ERRORS as exc:
            raise SourceError(f"log {str(path)!r}: a damaged gzip file ({type(exc).__name__}: {exc})") from exc
        if consumed < fh.tell():
            # The Unpacker stops silently at a record cut short by the end of the file.
            failed += 1
            reject(
                f"{path.name}#{index + 1}",
                f"truncated record at byte {consumed} (the file ends inside it)",
            )
    if failed and not decoded:
        raise SourceError(f"log {str(path)!r}: no record is a msgpack map; expected a stream of maps")
