"""Validating records into events that share their repeated strings and attribute maps."""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import closing
from typing import Any

from streamrec.errors import EventError, SchemaError
from streamrec.events import ActionVocabulary, Event, event_from_mapping
from streamrec.sources._common import _Records

#: Caps on the caches that share repeated strings and attribute maps between events.
_MAX_SHARED_STRINGS = 1 << 21
_MAX_SHARED_ATTRIBUTES = 1 << 12


def _load_events(
    records: _Records,
    vocab: ActionVocabulary,
    limit: int | None,
    rejected: list[tuple[str, str]],
    order: str | None = None,
) -> list[Event]:
    """Valid events in file order; with ``order``, an event whose order column is not a number is rejected."""
    events: list[Event] = []
    if limit == 0:
        return events
    builder = _EventBuilder(vocab)
    # closing() shuts the file at once when the limit cuts the stream short.
    with closing(records):
        for location, record in records:
            try:
                event = builder.build(record)
                if order is not None:
                    order_value(event, order)
                events.append(event)
            except EventError as exc:
                rejected.append((location, str(exc)))
                continue
            if limit is not None and len(events) >= limit:
                break
    return events


def order_value(event: Event, column: str) -> float:
    """The event's value in the order column (kept among its attributes), as a number."""
    value = event.attributes.get(column)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond any float
        number = math.nan
    if math.isnan(number):
        raise SchemaError(column, value, "a number (the order column given with order=)")
    return number


class _EventBuilder:
    """Validates records into events whose repeated strings and attribute maps are shared.

    Millions of events repeat a few thousand user/item ids, a handful of actions and (for
    MovieLens) ten rating maps; sharing them keeps a MovieLens event near 200 bytes.
    Shared attribute maps are plain dicts: events are frozen and must be treated as read-only.
    """

    def __init__(self, vocab: ActionVocabulary) -> None:
        self._vocab = vocab
        self._strings: dict[str, str] = {action: action for action in vocab.weights}
        self._attributes: dict[tuple[tuple[Any, type, Any], ...], Mapping[str, Any]] = {}

    def build(self, record: Mapping[str, Any]) -> Event:
        event = event_from_mapping(record, self._vocab)
        return Event(
            user_id=self._share(event.user_id),
            item_id=self._share(event.item_id),
            action=self._strings.get(event.action, event.action),
            timestamp=event.timestamp,
            event_id=event.event_id,
            attributes=self._share_attributes(event.attributes),
        )

    def _share(self, text: str) -> str:
        shared = self._strings.get(text)
        if shared is not None:
            return shared
        if len(self._strings) < _MAX_SHARED_STRINGS:
            self._strings[text] = text
        return text

    def _share_attributes(self, attributes: Mapping[str, Any]) -> Mapping[str, Any]:
        # The type is part of the key because 1, 1.0 and True are equal (and hash alike).
        key = tuple((name, type(value), value) for name, value in attributes.items())
        try:
            shared = self._attributes.get(key)
        except TypeError:  # an unhashable value (a list, a map): keep the event's own copy
            return attributes
        if shared is not None:
            return shared
        if len(self._attributes) < _MAX_SHARED_ATTRIBUTES:
            self._attributes[key] = attributes
        return attributes
