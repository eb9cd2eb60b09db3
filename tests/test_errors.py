"""The error tree of ``streamrec.errors``: one base, the tree its docstring draws, one reason per failure."""

from __future__ import annotations

import inspect
import re

import pytest

import streamrec.errors
from streamrec.errors import (
    DecodeError,
    EventError,
    SchemaError,
    StreamrecError,
    UnknownActionError,
)
from streamrec.kafka.clients import KafkaServiceError
from streamrec.kafka.messages import OversizedEventError

DEFINED = [cls for _, cls in inspect.getmembers(streamrec.errors, inspect.isclass)
           if issubclass(cls, BaseException) and cls.__module__ == streamrec.errors.__name__]
#: Errors other layers add to the tree: their reasons share the dead-letter and metric label space.
ELSEWHERE = [KafkaServiceError, OversizedEventError]


def _drawn_tree() -> dict[str, str | None]:
    """``name -> parent name`` as the module docstring draws it: a name's column is its depth."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column, name) of the open branches
    for line in (streamrec.errors.__doc__ or "").splitlines():
        match = re.match(r"^[\s│├└─]*(\w+Error)\b", line)
        if not match:
            continue
        column = match.start(1)
        while stack and stack[-1][0] >= column:
            stack.pop()
        parents[match.group(1)] = stack[-1][1] if stack else None
        stack.append((column, match.group(1)))
    return parents


def test_every_error_derives_from_streamrec_error() -> None:
    assert len(DEFINED) >= 10
    for cls in DEFINED + ELSEWHERE:
        assert issubclass(cls, StreamrecError), cls


def test_the_docstring_draws_the_real_tree() -> None:
    drawn = _drawn_tree()
    assert drawn["StreamrecError"] is None
    assert set(drawn) == {cls.__name__ for cls in DEFINED}, "every error is drawn, and only those"
    for cls in DEFINED:
        if cls is StreamrecError:
            continue
        base = next(b for b in cls.__bases__ if issubclass(b, StreamrecError))
        assert drawn[cls.__name__] == base.__name__, "drawn under its own base class"
    assert drawn["UnknownActionError"] == "SchemaError"
    assert drawn["DecodeError"] == drawn["SchemaError"] == "EventError"
    assert drawn["ConfigError"] == drawn["CheckpointError"] == "StreamrecError"


def test_reasons_are_distinct_slugs() -> None:
    reasons = {cls: cls.reason for cls in DEFINED + ELSEWHERE}
    for cls, reason in reasons.items():
        assert re.fullmatch(r"[a-z][a-z_]*", reason), (cls, reason)
    assert len(set(reasons.values())) == len(reasons), "one reason names one failure"
    assert StreamrecError.reason == "error" and UnknownActionError.reason == "unknown_action"


def test_an_instance_reports_its_own_reason_not_its_parents() -> None:
    error: EventError = UnknownActionError("teleport", ["view", "click"])
    assert error.reason == "unknown_action"
    try:
        raise DecodeError("bytes that are not msgpack")
    except EventError as caught:  # an event error is caught as one, whatever the kind
        assert caught.reason == "undecodable"


def test_schema_error_names_the_field_the_value_and_what_was_expected() -> None:
    error = SchemaError("timestamp", "yesterday", "an integer (ms)")
    assert str(error) == "field 'timestamp': got 'yesterday', expected an integer (ms)"
    assert (error.field, error.value) == ("timestamp", "yesterday")
    long_value = "x" * 500
    cut = SchemaError("title", long_value, "at most 200 characters")
    shown = str(cut).split("got ", 1)[1].split(", expected")[0]
    assert len(shown) == 80 and shown.endswith("...")  # the message stays short ...
    assert cut.value == long_value  # ... the error keeps the whole value


def test_unknown_action_lists_the_known_actions_sorted() -> None:
    error = UnknownActionError("teleport", ["view", "cart", "click"])
    assert isinstance(error, SchemaError) and error.field == "action"
    assert str(error) == "field 'action': got 'teleport', expected one of cart, click, view"
    with pytest.raises(EventError, match="teleport"):
        raise error
