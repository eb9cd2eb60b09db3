"""Fuzzed window snapshots (``streamrec/windows.py``, ``WindowStore.restore``): the bytes of
``windows.msgpack`` in a state directory, and of every changelog record.

A snapshot round-trips: the windows restored are the windows saved. A snapshot map with its bytes
or fields mutated restores or raises a :class:`CheckpointError`, also one that is not a map of
maps, or holds an event that is not what a window writes (which would break the user's next event).
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from fuzzkit import FUZZ, msgpack_values, mutated_bytes, mutated_tree
from hypothesis import assume, given
from hypothesis import strategies as st

from streamrec.errors import CheckpointError
from streamrec.events import Event
from streamrec.windows import WindowStore

events = st.builds(Event, user_id=st.sampled_from(["u1", "u2", "ü3"]), item_id=st.text(min_size=1, max_size=8),
                   action=st.sampled_from(["view", "cart"]), timestamp=st.integers(0, 10_000),
                   event_id=st.none() | st.text(min_size=1, max_size=6),
                   attributes=st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)
                                              | st.text(max_size=5), max_size=2))


def seeded_store() -> WindowStore:
    store = WindowStore(max_events=4)
    for n in range(12):
        store.add(Event(f"u{n % 3}", f"i{n}", "view", 1000 + n, f"e{n}", {"n": n, "tags": ["a"]}))
    return store


SNAPSHOTS = [seeded_store().snapshot(), seeded_store().snapshot(["u1"])]


def is_map_of_maps(blob: bytes) -> bool:
    """Whether the snapshot is a map whose ``users`` is a map (else: the known AttributeError below)."""
    try:
        data = msgpack.unpackb(blob, strict_map_key=False)
    except Exception:
        return True  # unreadable: restore says so with a CheckpointError
    return isinstance(data, dict) and ("users" not in data or data.get("version") != 1
                                       or isinstance(data["users"], dict))


def restored(blob: bytes) -> WindowStore | None:
    assume(is_map_of_maps(blob))
    store = WindowStore()
    try:
        users = store.restore(blob)
    except CheckpointError as exc:
        assert str(exc).startswith(("window snapshot is unreadable", "window snapshot version"))
        return None
    assert set(users) == set(store.users())
    return store


@FUZZ
@given(history=st.lists(events, max_size=30))
def test_a_snapshot_restores_the_windows_it_was_taken_of(history: list[Event]) -> None:
    store = WindowStore(max_events=5)
    for event in history:
        store.add(event)
    again = WindowStore(max_events=5)
    assert sorted(again.restore(store.snapshot())) == sorted(store.users())
    for user in store.users():
        assert again.window(user) == store.window(user)
        assert list(again.seen_items(user)) == list(store.seen_items(user))


@FUZZ
@given(blob=mutated_bytes(SNAPSHOTS) | st.binary(max_size=200))
def test_a_snapshot_with_bytes_flipped_cut_or_spliced_restores_or_is_a_checkpoint_error(blob: bytes) -> None:
    restored(blob)


@FUZZ
@given(data=st.sampled_from([msgpack.unpackb(s, strict_map_key=False) for s in SNAPSHOTS]).flatmap(mutated_tree)
       | msgpack_values)
def test_a_snapshot_with_a_field_dropped_or_retyped_restores_or_is_a_checkpoint_error(data: Any) -> None:
    try:
        blob = msgpack.packb(data, use_bin_type=True)
    except (ValueError, TypeError, OverflowError):
        assume(False)
    restored(blob)


@pytest.mark.parametrize("data", [[1], 7, "snapshot", {"version": 1, "users": []}, {"version": 1, "users": 3}],
                         ids=["list", "int", "str", "users-list", "users-int"])
def test_a_snapshot_that_is_not_a_map_of_maps_is_a_checkpoint_error(data: Any) -> None:
    with pytest.raises(CheckpointError):
        WindowStore().restore(msgpack.packb(data))


def test_a_snapshot_holding_an_invalid_event_is_a_checkpoint_error() -> None:
    blob = msgpack.packb({"version": 1, "users": {"u1": {"events": [["i1", "view", "soon", None, {}]],
                                                         "ids": [], "seen": []}}})
    with pytest.raises(CheckpointError):
        WindowStore().restore(blob)
