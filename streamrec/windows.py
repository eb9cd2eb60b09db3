"""Per-user sliding windows of recent behaviour, bounded in memory, snapshotable.

Policy (also in the README):

* A window keeps a user's last ``max_events`` events that are no older than ``horizon``
  before the user's newest event.
* Duplicates: an event whose ``event_id`` is among the user's recently seen ids (the last
  ``4 * max_events``, at least 256) is dropped and counted. Events without an id are never
  treated as duplicates.
* Out of order: an event older than the user's newest event is inserted at its place in time
  if it is at most ``max_lateness`` late; later than that it is dropped and counted.
* Memory: at most ``max_users`` users; the least recently active user is evicted first, and
  users idle for ``idle_ttl`` (in event time) are evicted by :meth:`WindowStore.expire`.
  Every eviction is counted.

>>> from streamrec.events import MAX_TIMESTAMP_MS, Event
>>> store = WindowStore(max_events=2)
>>> for t, item in enumerate(["a", "b", "c"]):
...     _ = store.add(Event("u1", item, "view", t))
>>> [e.item_id for e in store.window("u1")]
['b', 'c']
"""

from __future__ import annotations

import bisect
import enum
from collections import OrderedDict, deque
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from streamrec.errors import CheckpointError
from streamrec.events import MAX_TIMESTAMP_MS, Event

SNAPSHOT_VERSION = 1


class Added(enum.Enum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    TOO_LATE = "too_late"


@dataclass
class UserWindow:
    events: deque[Event] = field(default_factory=deque)
    recent_ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    seen_items: OrderedDict[str, None] = field(default_factory=OrderedDict)

    @property
    def newest(self) -> int:
        return self.events[-1].timestamp if self.events else -1


@dataclass
class WindowStats:
    added: int = 0
    duplicates: int = 0
    too_late: int = 0
    evicted_users: int = 0


class WindowStore:
    """All users' windows. Not thread-safe: one pipeline owns it."""

    def __init__(
        self,
        max_events: int = 50,
        horizon_ms: int = 30 * 86_400_000,
        max_users: int = 200_000,
        idle_ttl_ms: int | None = None,
        max_lateness_ms: int = 3_600_000,
        max_seen_items: int = 1000,
        remember_actions: Collection[str] | None = None,
    ) -> None:
        self.max_events = max_events
        self.horizon_ms = horizon_ms
        self.max_users = max_users
        self.idle_ttl_ms = idle_ttl_ms
        self.max_lateness_ms = max_lateness_ms
        self.max_seen_items = max_seen_items
        self.remember_actions = None if remember_actions is None else frozenset(remember_actions)
        self.stats = WindowStats()
        self._users: OrderedDict[str, UserWindow] = OrderedDict()  # least recently active first
        self._max_ids = max(256, 4 * max_events)
        self._evicted: list[str] = []  # since the last take_evicted()

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def users(self) -> Iterator[str]:
        return iter(self._users)

    def window(self, user_id: str) -> tuple[Event, ...]:
        user = self._users.get(user_id)
        return tuple(user.events) if user else ()

    def seen_items(self, user_id: str) -> Collection[str]:
        user = self._users.get(user_id)
        return user.seen_items.keys() if user else ()

    def add(self, event: Event) -> Added:
        user = self._users.get(event.user_id)
        if user is None:
            user = self._users[event.user_id] = UserWindow()
            self._evict_over_cap()
        else:
            self._users.move_to_end(event.user_id)
        if event.event_id is not None and event.event_id in user.recent_ids:
            self.stats.duplicates += 1
            return Added.DUPLICATE
        if event.timestamp < user.newest - self.max_lateness_ms:
            self.stats.too_late += 1
            return Added.TOO_LATE
        if event.event_id is not None:
            _remember(user.recent_ids, event.event_id, self._max_ids)
        if self.remember_actions is None or event.action in self.remember_actions:
            _remember(user.seen_items, event.item_id, self.max_seen_items)
        if event.timestamp >= user.newest:
            user.events.append(event)
        else:  # late but within max_lateness: keep the window in time order
            position = bisect.bisect_right([e.timestamp for e in user.events], event.timestamp)
            user.events.insert(position, event)
        self._trim(user)
        self.stats.added += 1
        return Added.ADDED

    def expire(self, now_ms: int) -> int:
        """Evict users idle (in event time) for longer than ``idle_ttl``; returns how many.

        Walks from the least recently active user and stops at the first one still fresh, so a
        call costs the evictions it makes, not the users held. (A user whose events arrived out of
        time order behind a fresher one goes on a later call.)
        """
        if self.idle_ttl_ms is None:
            return 0
        cutoff = now_ms - self.idle_ttl_ms
        evicted = 0
        while self._users:
            user_id, oldest = next(iter(self._users.items()))
            if oldest.newest >= cutoff:
                break
            del self._users[user_id]
            self._evicted.append(user_id)
            evicted += 1
        self.stats.evicted_users += evicted
        return evicted

    def take_evicted(self) -> list[str]:
        """Users evicted (idle TTL or the cap) since the last call; their state elsewhere can go."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def drop(self, user_ids: Iterable[str]) -> None:
        """Forget users (their partition moved elsewhere); not counted as evictions."""
        for uid in user_ids:
            self._users.pop(uid, None)

    def _trim(self, user: UserWindow) -> None:
        cutoff = user.newest - self.horizon_ms
        while user.events and (len(user.events) > self.max_events or user.events[0].timestamp < cutoff):
            user.events.popleft()

    def _evict_over_cap(self) -> None:
        while len(self._users) > self.max_users:
            user_id, _ = self._users.popitem(last=False)
            self._evicted.append(user_id)
            self.stats.evicted_users += 1

    # -- checkpoints -------------------------------------------------------------------------

    def snapshot(self, user_ids: Iterable[str] | None = None) -> bytes:
        """Serialise the given users' windows (all when None) to msgpack."""
        chosen = self._users if user_ids is None else [u for u in user_ids if u in self._users]
        users = {uid: _pack_user(self._users[uid]) for uid in chosen}
        return msgpack.packb({"version": SNAPSHOT_VERSION, "users": users}, use_bin_type=True)

    def restore(self, blob: bytes) -> list[str]:
        """Load users from a snapshot, replacing windows of the same users; returns their ids."""
        try:
            data = msgpack.unpackb(blob, raw=False, strict_map_key=False)
            if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
                raise CheckpointError("window snapshot is unreadable: not a map with a map of users")
            if data.get("version") != SNAPSHOT_VERSION:
                raise CheckpointError(f"window snapshot version {data.get('version')!r} "
                                      f"is not {SNAPSHOT_VERSION}")
            for uid, packed in data["users"].items():
                self._users[uid] = _unpack_user(uid, packed)
                self._users.move_to_end(uid)
        except (ValueError, KeyError, TypeError, RecursionError, msgpack.UnpackException) as exc:
            raise CheckpointError(f"window snapshot is unreadable: {type(exc).__name__}: {exc!s:.200}") from exc
        self._evict_over_cap()
        return list(data["users"])


def _remember(keys: OrderedDict[str, None], key: str, cap: int) -> None:
    keys[key] = None
    keys.move_to_end(key)
    while len(keys) > cap:
        keys.popitem(last=False)


def _pack_user(user: UserWindow) -> dict[str, Any]:
    return {
        "events": [[e.item_id, e.action, e.timestamp, e.event_id, dict(e.attributes)] for e in user.events],
        "ids": list(user.recent_ids),
        "seen": list(user.seen_items),
    }


def _unpack_user(user_id: str, packed: dict[str, Any]) -> UserWindow:
    """A user's window from its snapshot; a ValueError for anything but what :func:`_pack_user` writes."""
    events = deque(Event(user_id, item, action, ts, eid, attrs)
                   for item, action, ts, eid, attrs in packed["events"])
    for e in events:
        if not (isinstance(user_id, str) and isinstance(e.item_id, str) and isinstance(e.action, str)
                and type(e.timestamp) is int and 0 <= e.timestamp <= MAX_TIMESTAMP_MS
                and isinstance(e.event_id, str | None) and isinstance(e.attributes, dict)
                and 0 < len(user_id) <= 256 and 0 < len(e.item_id) <= 256 and len(e.event_id or "x") <= 256):
            raise ValueError(f"user {user_id!r:.40}: an event that is not (item, action, time, id, attributes)")
    ids, seen = packed["ids"], packed["seen"]
    if not all(isinstance(key, str) for key in [*ids, *seen]):
        raise ValueError(f"user {user_id!r:.40}: recent ids and seen items must be strings")
    return UserWindow(events, OrderedDict.fromkeys(ids), OrderedDict.fromkeys(seen))
