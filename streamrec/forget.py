"""Forgetting a user: their behaviour history is personal data, and a request removes it.

What a user leaves in streamrec, and what a forget request does with it:

* their **window** (recent events, the seen-item ids, the rendered text), the encoder's **KV
  cache** of it, its vector, their cached ranking rows and their latest recommendation (kept
  for online quality): all dropped (:meth:`streamrec.pipeline.Pipeline.drop_users`);
* in Kafka, their **changelog** record and their **recommendation**: a tombstone each (null
  value, keyed by ``user_id``), so a restart restores nothing of them and compaction removes
  what was there; a local state directory's ``windows.msgpack``: rewritten without them;
* what the **model** learned from them (head weights, co-occurrence and popularity counts, the
  head's replay buffer of recent training examples, which holds no user ids): not removable
  one user at a time. It fades with ``head.cooccurrence_half_life`` and as the replay buffer
  cycles; to remove it outright, retrain from the retained log (``streamrec train``) once the
  user's events are gone from it.

A request reaches the Kafka service as a **control record on the input topic**: header
``streamrec.action: forget``, key the user id, any value. It travels with the user's events, so
it is applied in order (events before it are forgotten, events after it start a new window),
exactly once per committed batch like any event, and by whichever instance owns the user's
partition, including one that restarts after the request was sent. ``streamrec forget`` sends
it to every partition, so it reaches the user whatever partitioner their producer used.

>>> is_forget_request([("streamrec.action", b"forget")]), is_forget_request(None)
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgpack

from streamrec.errors import CheckpointError
from streamrec.manifest import refresh_file
from streamrec.windows import SNAPSHOT_VERSION

ACTION_HEADER = "streamrec.action"
FORGET = b"forget"
WINDOWS_FILE = "windows.msgpack"  # as streamrec.state names it (that module brings torch)

Headers = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None


def is_forget_request(headers: Headers) -> bool:
    """Whether a message with these headers asks to forget the user its key names."""
    for name, value in (headers.items() if isinstance(headers, Mapping) else headers or ()):
        if name == ACTION_HEADER:
            return (value.encode() if isinstance(value, str) else value) == FORGET
    return False


def forget_headers() -> list[tuple[str, bytes]]:
    return [(ACTION_HEADER, FORGET)]


def forget_in_state_dir(state_dir: str | Path, user_ids: Iterable[str]) -> list[str]:
    """Remove users' windows from a state directory's ``windows.msgpack`` (atomically: a temp
    file, then a rename); returns the users that were there."""
    path = Path(state_dir) / WINDOWS_FILE
    if not path.exists():
        if not Path(state_dir).is_dir():
            raise CheckpointError(f"{state_dir} is not a state directory")
        return []
    try:
        data = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
        users = data["users"]
        if data.get("version") != SNAPSHOT_VERSION or not isinstance(users, dict):
            raise CheckpointError(f"{path} is not a version-{SNAPSHOT_VERSION} window snapshot")
    except (ValueError, KeyError, TypeError, AttributeError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"{path} is unreadable: {exc}") from exc
    removed = [user for user in dict.fromkeys(user_ids) if users.pop(user, None) is not None]
    if removed:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(msgpack.packb(data, use_bin_type=True))
        tmp.replace(path)
        refresh_file(Path(state_dir), WINDOWS_FILE)  # its checksum in state.json
    return removed
