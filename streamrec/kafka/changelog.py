"""User windows follow their input partition through a compacted changelog topic.

The changelog (``kafka.changelog_topic``, default ``<group>-windows-changelog``) has
``cleanup.policy=compact`` and exactly as many partitions as the input topic. Its record for a
user is keyed by ``user_id``, lives in the partition equal to the input partition the user's
events come from, and holds ``WindowStore.snapshot([user])``; a tombstone (no value) means the
user has no window. Compaction keeps the latest record per user, so the topic is the durable
copy of every window, and whoever owns input partition *p* can rebuild its users' windows
by reading changelog partition *p* from the beginning.

Why a changelog and not periodic window snapshots to disk: windows must move with partitions
between instances, and a snapshot taken at another moment than the committed offsets would
lose or double-count events. The changelog record of a batch is written before that batch's
offsets are committed, so the restored windows always cover at least the committed events;
events redelivered after a crash are then recognised by their ``event_id`` and not counted
twice. Under exactly-once the records are part of the batch's transaction and read with
``read_committed``, so a restore sees exactly the committed batches.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

import msgpack
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streamrec.config import Settings
from streamrec.errors import CheckpointError
from streamrec.kafka.clients import KafkaServiceError, consumer_config
from streamrec.kafka.security import raise_on_auth, raise_on_auth_exception
from streamrec.retry import retry
from streamrec.windows import SNAPSHOT_VERSION

if TYPE_CHECKING:
    from streamrec.pipeline import Pipeline

log = logging.getLogger(__name__)

RESTORE_TIMEOUT_S = 300.0
WATERMARK_TIMEOUT_S = 30.0


def changelog_topic(settings: Settings) -> str:
    return settings.kafka.changelog_topic or f"{settings.kafka.group}-windows-changelog"


class PartitionUsers:
    """Which users' windows came from which input partition.

    >>> owners = PartitionUsers()
    >>> owners.add(0, "u1"); owners.add(1, "u2"); owners.add(1, "u1")  # u1 moved (re-keyed) to 1
    >>> sorted(owners.pop(1)), owners.pop(0)
    (['u1', 'u2'], set())
    """

    def __init__(self) -> None:
        self._users: dict[int, set[str]] = {}
        self._partition: dict[str, int] = {}

    def add(self, partition: int, user_id: str) -> None:
        previous = self._partition.get(user_id)
        if previous == partition:
            return
        if previous is not None:
            self._users[previous].discard(user_id)
        self._partition[user_id] = partition
        self._users.setdefault(partition, set()).add(user_id)

    def partition_of(self, user_id: str) -> int | None:
        return self._partition.get(user_id)

    def remove(self, user_id: str) -> None:
        partition = self._partition.pop(user_id, None)
        if partition is not None:
            self._users[partition].discard(user_id)

    def users(self, partition: int) -> set[str]:
        return set(self._users.get(partition, ()))

    def pop(self, partition: int) -> set[str]:
        users = self._users.pop(partition, set())
        for user in users:
            self._partition.pop(user, None)
        return users

    def prune(self, keep: Callable[[str], bool]) -> int:
        """Forget users ``keep`` rejects (evicted windows); returns how many."""
        gone = [user for user in self._partition if not keep(user)]
        for user in gone:
            self._users[self._partition.pop(user)].discard(user)
        return len(gone)

    def __len__(self) -> int:
        return len(self._partition)


class ChangelogReader:
    """Reads changelog partitions from the beginning to their end, outside the consumer group."""

    def __init__(self, settings: Settings, topic: str, stop: threading.Event | None = None,
                 timeout_s: float = RESTORE_TIMEOUT_S) -> None:
        self.topic = topic
        self.stop = stop
        self.timeout_s = timeout_s
        config = consumer_config(settings, f"{settings.kafka.group}-restore-{uuid.uuid4().hex[:8]}", in_group=False)
        # Committed data only: under exactly-once an aborted batch's windows must not come back.
        # fetch.wait.max.ms: each partition's end is seen one empty fetch later; keep that short.
        config.update({"enable.partition.eof": True, "isolation.level": "read_committed", "fetch.wait.max.ms": 100})
        self._consumer = Consumer(config)
        self.group = str(config["group.id"])  # named when an ACL for it is missing

    def read(self, partitions: Iterable[int]) -> dict[int, dict[str, bytes]]:
        """The latest snapshot per user in each partition (tombstoned users left out)."""
        latest: dict[int, dict[str, bytes]] = {}
        ends: dict[int, int] = {}
        for partition in partitions:
            latest[partition] = {}
            low, high = self._watermarks(partition)
            if high > low:
                ends[partition] = high
        if not ends:
            return latest
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in ends])
        try:
            self._read_to_end(ends, latest)
        finally:
            self._consumer.unassign()
        return latest

    def _watermarks(self, partition: int) -> tuple[int, int]:
        def ask() -> tuple[int, int]:
            low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, partition),
                                                             timeout=WATERMARK_TIMEOUT_S)
            return int(low), int(high)

        try:  # a just-created changelog may not have a leader yet
            return retry(ask, retriable=lambda exc: isinstance(exc, KafkaException), attempts=3, first_s=1.0)
        except KafkaException as exc:
            raise_on_auth_exception(exc, f"read the changelog topic {self.topic!r}", self.group)
            raise KafkaServiceError(f"cannot read the end of {self.topic}[{partition}]: {exc}") from exc

    def _read_to_end(self, ends: dict[int, int], latest: dict[int, dict[str, bytes]]) -> None:
        deadline = time.monotonic() + self.timeout_s
        waiting = dict(ends)
        while waiting:
            if self.stop is not None and self.stop.is_set():
                raise KafkaServiceError("stopped while restoring windows from the changelog")
            if time.monotonic() > deadline:
                raise KafkaServiceError(f"restoring {self.topic} partitions {sorted(waiting)} took longer "
                                        f"than {self.timeout_s:.0f}s (an open transaction holding "
                                        "read_committed back, or the broker is unreachable)")
            for message in self._consumer.consume(num_messages=1000, timeout=0.5):
                partition = int(message.partition() or 0)
                error = message.error()
                if error is not None:
                    # read_committed stops at the last stable offset; trailing transaction markers
                    # sit below the high watermark without ever being delivered, so EOF ends it.
                    if error.code() == KafkaError._PARTITION_EOF:
                        waiting.pop(partition, None)
                        continue
                    raise_on_auth(error, f"read the changelog topic {self.topic!r}", self.group)
                    if error.fatal():
                        raise KafkaServiceError(f"changelog restore failed: {error}")
                    log.warning("changelog restore: %s", error)
                    continue
                key = message.key()
                if key is None:
                    continue
                users = latest[partition]
                value = message.value()
                if value is None:
                    users.pop(key.decode(), None)
                else:
                    users[key.decode()] = value

    def close(self) -> None:
        self._consumer.close()



def merge_snapshots(snapshots: Iterable[bytes]) -> bytes:
    """One window snapshot holding the users of many (restoring them in one go is O(users)).

    >>> from streamrec.events import Event
    >>> from streamrec.windows import WindowStore
    >>> store = WindowStore()
    >>> for user in ("u1", "u2"):
    ...     _ = store.add(Event(user, "7", "view", 1))
    >>> restored = WindowStore()
    >>> _ = restored.restore(merge_snapshots([store.snapshot(["u1"]), store.snapshot(["u2"])]))
    >>> sorted(restored.users())
    ['u1', 'u2']
    """
    users: dict[str, object] = {}
    for blob in snapshots:
        try:
            data = msgpack.unpackb(blob, raw=False, strict_map_key=False)
            if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
                raise CheckpointError(f"changelog record is not a version-{SNAPSHOT_VERSION} window snapshot")
            users.update(data["users"])
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
            raise CheckpointError(f"changelog record is unreadable: {exc}") from exc
    return msgpack.packb({"version": SNAPSHOT_VERSION, "users": users}, use_bin_type=True)


class PartitionWindows:
    """The windows of the input partitions this instance owns: restored, tracked, dropped."""

    def __init__(self, pipeline: Pipeline, reader: ChangelogReader) -> None:
        self.pipeline = pipeline
        self.reader = reader
        self.owners = PartitionUsers()

    def restore(self, partitions: list[int]) -> int:
        """Load the partitions' windows from the changelog; returns how many users."""
        restored = 0
        for partition, users in self.reader.read(partitions).items():
            if users:
                restored += self.pipeline.restore_users(merge_snapshots(users.values()))
            for user in users:
                self.owners.add(partition, user)
                # Index every item of a restored window now: the pipeline sizes its item matrix
                # before ranking, and an item first indexed while ranking would fall outside it.
                for event in self.pipeline.windows.window(user):
                    self.pipeline.catalog.index_of(event.item_id)
        return restored

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the partitions' users (their windows live on in the changelog); returns how many."""
        users: set[str] = set()
        for partition in partitions:
            users |= self.owners.pop(partition)
        self.pipeline.drop_users(users)
        return len(users)

    def forget(self, users: Iterable[str]) -> int:
        """Users asked to be forgotten (:mod:`streamrec.forget`): dropped, no longer tracked;
        returns how many of them had a window here."""
        users = list(dict.fromkeys(users))
        held = sum(user in self.pipeline.windows for user in users)
        for user in users:
            self.owners.remove(user)
        self.pipeline.drop_users(users)
        return held

    def release(self, users: Iterable[str], keep: Collection[int] = ()) -> list[tuple[int, str]]:
        """Evicted users, as ``(partition, user)`` to tombstone, no longer tracked; users of the
        partitions in ``keep`` (lost ones: not ours to write) stay as they are."""
        released = []
        for user in users:
            partition = self.owners.partition_of(user)
            if partition is not None and partition not in keep:
                self.owners.remove(user)
                released.append((partition, user))
        return released

    def prune(self) -> int:
        """Stop tracking users whose windows were evicted."""
        return self.owners.prune(lambda user: user in self.pipeline.windows)

    def close(self) -> None:
        self.reader.close()
