"""Fuzzed changelog records (``streamrec/kafka/changelog.py``, ``merge_snapshots``), without a broker.

Records of valid snapshots merge into one that restores every user's window; any set of records
with bytes or fields mutated merges into a snapshot that restores (or is refused with a
:class:`CheckpointError` at the restore), or is refused with a :class:`CheckpointError` at the merge.
"""

from __future__ import annotations

from typing import Any

import msgpack
from fuzzkit import FUZZ, mutated_bytes, mutated_tree
from hypothesis import assume, given
from hypothesis import strategies as st

from streamrec.errors import CheckpointError
from streamrec.events import Event
from streamrec.kafka.changelog import merge_snapshots
from streamrec.windows import WindowStore


def seeded_store() -> WindowStore:
    store = WindowStore(max_events=4)
    for n in range(12):
        store.add(Event(f"u{n % 3}", f"i{n}", "view", 1000 + n, f"e{n}", {"n": n}))
    return store


STORE = seeded_store()
RECORDS = [STORE.snapshot([user]) for user in STORE.users()]
TREES = [msgpack.unpackb(record, strict_map_key=False) for record in RECORDS]


def packed_or_skip(data: Any) -> bytes:
    try:
        return msgpack.packb(data, use_bin_type=True)
    except (ValueError, TypeError, OverflowError):
        assume(False)
        raise


records = (st.sampled_from(RECORDS) | mutated_bytes(RECORDS) | st.binary(max_size=100)
           | st.sampled_from(TREES).flatmap(mutated_tree).map(packed_or_skip))


@FUZZ
@given(chosen=st.lists(st.sampled_from(RECORDS), min_size=1, max_size=5))
def test_merged_records_restore_every_user_of_each(chosen: list[bytes]) -> None:
    store = WindowStore()
    store.restore(merge_snapshots(chosen))
    users = {user for record in chosen for user in msgpack.unpackb(record)["users"]}
    assert set(store.users()) == users
    for user in users:
        assert store.window(user) == STORE.window(user)


@FUZZ
@given(chosen=st.lists(records, min_size=1, max_size=4))
def test_mutated_records_merge_and_restore_or_are_checkpoint_errors(chosen: list[bytes]) -> None:
    try:
        merged = merge_snapshots(chosen)
    except CheckpointError as exc:
        assert str(exc).startswith("changelog record is")
        return
    try:
        WindowStore().restore(merged)  # a merged snapshot is a map of maps: no AttributeError (see test_windows_fuzz)
    except CheckpointError as exc:
        assert str(exc).startswith("window snapshot is unreadable")
