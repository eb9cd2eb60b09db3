"""Readers of recorded behaviour logs: generic CSV/JSONL/msgpack logs, MovieLens, Amazon reviews and
RecBole atomic files.

:func:`read_log` loads a whole log as validated, time-sorted :class:`~streamrec.events.Event`
objects (for the replay runner); :func:`iter_log_records` streams the same records, mapped to
our field names but not validated, in file order (for producers that publish a log).

Generic logs name their columns freely; ``column_map`` maps our field names (``user_id``,
``item_id``, ``action``, ``timestamp``, ``event_id``) to the file's, and carries four options:
``timestamp_unit`` (``"ms"``, the default, or ``"s"``), ``default_action`` (for logs without an
action column), ``metadata`` (the item file of an Amazon review log) and ``order`` (a numeric
column that orders events sharing a timestamp, such as a per-user ``seq_pos`` in a log whose
timestamps are whole days). Columns that are not mapped become the event's ``attributes``.

A record that fails validation does not stop the load: it lands in
:attr:`RecordedLog.rejected` with its location (``file.csv:17``, or ``file.msgpack#17`` for the
17th msgpack record). A log that cannot be read at all raises :class:`SourceError`.

>>> log = read_log("ratings/ml-100k", ActionVocabulary.for_domain("video"))  # doctest: +SKIP
>>> len(log.events), len(log.items), log.domain  # doctest: +SKIP
(100000, 1682, 'video')
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from streamrec.catalog import Item
from streamrec.errors import SourceError
from streamrec.events import ActionVocabulary, Event
from streamrec.sources._common import _collector, _ColumnSpec, _raise_reject
from streamrec.sources._event_builder import _load_events, order_value
from streamrec.sources._formats import (
    _DOMAINS,
    LogFormat,
    _check_vocabulary,
    _load_items,
    _records,
    _resolve_format,
    detect_format,
)
from streamrec.sources._recbole import atomic_rows

__all__ = [
    "LogFormat", "RecordedLog", "detect_format", "iter_log_records", "iter_recbole_rows", "parse_column_map",
    "read_log",
]


@dataclass
class RecordedLog:
    """A loaded log: events sorted by time (ties keep file order) and the item text it ships."""

    events: list[Event]
    #: Item text shipped with the log: MovieLens movies, the Amazon metadata of the products
    #: the loaded events mention, or a RecBole ``.item`` file; [] for generic logs.
    items: list[Item] = field(default_factory=list)
    #: (location, message) of the event and item records that failed validation.
    rejected: list[tuple[str, str]] = field(default_factory=list)
    #: The domain whose action vocabulary the log uses, when the format fixes it.
    domain: str | None = None


def iter_log_records(
    path: str | Path,
    log_format: LogFormat = "auto",
    column_map: Mapping[str, str] | None = None,
    *,
    rejected: list[tuple[str, str]] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)`` in file order, each record in our field names, unvalidated.

    Records that cannot be decoded at all (a line that is not JSON, a CSV row with the wrong
    number of values) are appended to ``rejected`` when it is given; without it they raise
    :class:`SourceError`. Validate the records with :func:`~streamrec.events.event_from_mapping`.
    """
    path = Path(path)
    resolved = _resolve_format(path, log_format)
    spec = _ColumnSpec.parse(column_map)
    reject = _collector(rejected) if rejected is not None else _raise_reject
    return _records(path, resolved, spec, reject)


def iter_recbole_rows(
    path: str | Path,
    columns: Sequence[str],
    *,
    rejected: list[tuple[str, str]] | None = None,
) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ``(location, {column: value})`` of one RecBole atomic file (``.inter``, ``.item``, ...) in file order.

    Column names are the header's without their types (``item_id:token`` -> ``item_id``), values are
    as written. A missing file or a header without one of ``columns`` raises :class:`SourceError`; a
    row with the wrong number of values is appended to ``rejected`` when it is given, else raises
    :class:`SourceError` too.
    """
    reject = _collector(rejected) if rejected is not None else _raise_reject
    return atomic_rows(Path(path), columns, reject)


def read_log(
    path: str | Path,
    vocab: ActionVocabulary,
    log_format: LogFormat = "auto",
    column_map: Mapping[str, str] | None = None,
    limit: int | None = None,
) -> RecordedLog:
    """Load a recorded log as validated events sorted by timestamp (then the order column), plus its item text.

    ``limit`` stops after that many valid events in file order (before sorting).
    """
    path = Path(path)
    resolved = _resolve_format(path, log_format)
    spec = _ColumnSpec.parse(column_map)
    _check_vocabulary(resolved, vocab, spec)
    if limit is not None and limit < 0:
        raise SourceError(f"limit must be >= 0, got {limit}")
    rejected: list[tuple[str, str]] = []
    events = _load_events(_records(path, resolved, spec, _collector(rejected)), vocab, limit, rejected, spec.order)
    # list.sort is stable, so events with equal timestamps (and order values) keep their file order.
    if spec.order is None:
        events.sort(key=attrgetter("timestamp"))
    else:
        column = spec.order
        events.sort(key=lambda event: (event.timestamp, order_value(event, column)))
    items = _load_items(path, resolved, spec, events, rejected)
    return RecordedLog(events, items, rejected, _DOMAINS.get(resolved))


def parse_column_map(pairs: list[str] | None) -> dict[str, str] | None:
    """``["user_id=visitorid"]`` (the CLI's ``--column``) -> ``{"user_id": "visitorid"}``.

    >>> parse_column_map(["user_id = visitorid", "timestamp_unit=s"])
    {'user_id': 'visitorid', 'timestamp_unit': 's'}
    """
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep:
            raise SourceError(f"--column {pair!r}: expected ours=theirs, e.g. user_id=visitorid")
        out[ours.strip()] = theirs.strip()
    return out
