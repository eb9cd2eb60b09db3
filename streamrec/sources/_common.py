"""Plumbing shared by the readers: the column map, rejections, opening files, progress, timestamps."""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

import msgpack
from tqdm import tqdm

from streamrec.errors import SourceError

#: Called with (location, message) for a record that cannot become an event.
Reject = Callable[[str, str], None]
_Records = Generator[tuple[str, dict[str, Any]], None, None]

EVENT_FIELDS = ("user_id", "item_id", "action", "timestamp", "event_id")
OPTION_KEYS = ("timestamp_unit", "default_action", "metadata", "order")

#: What reading a damaged ``.gz`` file raises: a bad header, a corrupt stream, a file cut short.
GZIP_ERRORS = (gzip.BadGzipFile, zlib.error, EOFError)

#: Files at least this big get a progress bar (tqdm hides it when stderr is not a terminal).
_PROGRESS_MIN_BYTES = 16 * 1024 * 1024
_PROGRESS_EVERY = 1 << 16


@dataclass(frozen=True)
class _ColumnSpec:
    """A parsed ``column_map``: our field -> the file's column, plus the loader options."""

    columns: Mapping[str, str]
    explicit: frozenset[str]  # the fields and options the column map gave
    timestamp_unit: Literal["s", "ms"] = "ms"
    default_action: str | None = None
    metadata: Path | None = None
    #: A numeric column that orders events sharing a timestamp (``seq_pos``); it stays an attribute.
    order: str | None = None

    @classmethod
    def parse(cls, column_map: Mapping[str, str] | None) -> _ColumnSpec:
        given = dict(column_map or {})
        unknown = sorted(set(given) - set(EVENT_FIELDS) - set(OPTION_KEYS))
        if unknown:
            raise SourceError(
                f"column_map: unknown key(s) {', '.join(map(repr, unknown))}; expected field names "
                f"({', '.join(EVENT_FIELDS)}) or options ({', '.join(OPTION_KEYS)})"
            )
        unit = given.get("timestamp_unit", "ms")
        if unit not in ("s", "ms"):
            raise SourceError(f"column_map: timestamp_unit must be 's' or 'ms', got {unit!r}")
        columns = {name: given.get(name, name) for name in EVENT_FIELDS}
        metadata = given.get("metadata")
        return cls(
            columns=columns,
            explicit=frozenset(name for name in (*EVENT_FIELDS, *OPTION_KEYS) if name in given),
            timestamp_unit="s" if unit == "s" else "ms",
            default_action=given.get("default_action") or None,
            metadata=Path(metadata) if metadata else None,
            order=given.get("order") or None,
        )

    @property
    def used_columns(self) -> frozenset[str]:
        return frozenset(self.columns.values())


def _collector(rejected: list[tuple[str, str]]) -> Reject:
    return lambda location, message: rejected.append((location, message))


def _raise_reject(location: str, message: str) -> None:
    raise SourceError(f"{location}: {message}")


def _suffix(path: Path) -> str:
    """The file's extension, lower case, looking through a ``.gz`` ending."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return path.open(encoding=encoding, newline="")


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _progress_bar(path: Path) -> tqdm:
    """A byte progress bar for reading ``path``: shown for big files, and only on a terminal."""
    size = path.stat().st_size
    # A compressed file's size says nothing about its decoded length: count without a total.
    total = None if path.suffix.lower() == ".gz" else size
    disable = True if size < _PROGRESS_MIN_BYTES else None  # None: hide when not a TTY
    return tqdm(total=total, unit="B", unit_scale=True, desc=path.name, leave=False, disable=disable)


def _progress_lines(lines: Iterable[str], path: Path) -> Iterator[str]:
    """Yield ``lines`` unchanged, advancing a progress bar in batches (it costs per call)."""
    with _progress_bar(path) as bar:
        pending = 0
        for count, line in enumerate(lines, 1):
            pending += len(line)  # characters, close enough to bytes for a progress bar
            if count % _PROGRESS_EVERY == 0:
                bar.update(pending)
                pending = 0
            yield line
        bar.update(pending)


def _to_millis(value: Any, unit: Literal["s", "ms"]) -> Any:
    """A numeric timestamp (or numeric string) in ``unit`` as int ms; other values unchanged.

    Values that are not numbers pass through so that validation rejects them with its message.
    """
    if isinstance(value, msgpack.Timestamp):
        return value.to_unix_nano() // 1_000_000
    number: int | float
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    else:
        return value
    scale = 1000 if unit == "s" else 1
    if isinstance(number, float):
        if not math.isfinite(number):
            return number
        # round(): 1.001 s * 1000 is 1000.999..., which int() would cut to 1000 ms. 1e308 s is
        # infinite in ms: left a float, which validation rejects.
        millis = number * scale
        return round(millis) if math.isfinite(millis) else millis
    return number * scale
