"""Consumed offsets: commit them, read them back, and rewind to them.

:func:`committed_offsets` reads a group's committed offsets, asking again while the group
coordinator moves or loads (a broker restart, a freshly formatted cluster).
:func:`commit` commits synchronously and says whether it took; only a fatal error raises.
:func:`rewind` seeks partitions back to their committed offsets (after an aborted transaction).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

from streamrec.kafka.clients import KafkaServiceError
from streamrec.kafka.security import raise_on_auth, raise_on_auth_exception
from streamrec.retry import retry

log = logging.getLogger(__name__)

#: Errors a group coordinator answers with while it moves or loads (a broker restart, a fresh
#: cluster): asking again shortly succeeds.
COORDINATOR_CHANGING = frozenset({KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                                  KafkaError.COORDINATOR_NOT_AVAILABLE})


def commit(consumer: Consumer, offsets: list[TopicPartition]) -> bool:
    """Commit ``offsets`` synchronously; False (logged) when the commit did not take, e.g. during a
    rebalance: the events are then redelivered and recognised as duplicates."""
    try:
        committed = consumer.commit(offsets=offsets, asynchronous=False) or []
    except KafkaException as exc:
        raise_on_auth_exception(exc, "commit the group's offsets")
        error: KafkaError = exc.args[0]
        if error.fatal():
            raise KafkaServiceError(f"commit failed fatally: {error}") from exc
        log.warning("commit failed (%s); the batch will be redelivered and its events deduplicated", error)
        return False
    failed = [tp for tp in committed if tp.error is not None]
    for tp in failed:
        raise_on_auth(tp.error, f"commit the group's offsets of topic {tp.topic!r}")
    if failed:
        log.warning("commit failed for %s; those events will be redelivered and deduplicated", failed)
    return not failed


class Committer:
    """Synchronous commits of batch offsets. What a failed commit (one during a rebalance) left is
    committed with the next call, for the partitions still assigned: an idle partition would
    otherwise keep a lag of one batch until its next event."""

    def __init__(self, consumer: Consumer, topic: str) -> None:
        self.consumer, self.topic = consumer, topic
        self.pending: dict[int, int] = {}  # partition -> offset not committed yet

    def commit(self, offsets: dict[int, int], assigned: Collection[int]) -> bool | None:
        """Commit ``offsets`` with what is pending; None when there was nothing to commit."""
        for partition, offset in offsets.items():
            self.pending[partition] = max(self.pending.get(partition, -1), offset)
        self.pending = {p: o for p, o in self.pending.items() if p in assigned}
        if not self.pending:
            return None
        done = commit(self.consumer, [TopicPartition(self.topic, p, o) for p, o in sorted(self.pending.items())])
        if done:
            self.pending = {}
        return done


def rewind(consumer: Consumer, topic: str, partitions: Sequence[int], auto_offset_reset: str,
           timeout_s: float) -> list[tuple[int, int]]:
    """Seek ``partitions`` back to the group's committed offsets (``auto_offset_reset`` where there
    is none); returns ``(partition, offset)`` pairs."""
    found = committed_offsets(consumer, [TopicPartition(topic, p) for p in partitions], timeout_s)
    fallback = OFFSET_BEGINNING if auto_offset_reset in ("earliest", "smallest", "beginning") else OFFSET_END
    for tp in found:
        consumer.seek(TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else fallback))
    return [(tp.partition, tp.offset) for tp in found]


def committed_offsets(consumer: Consumer, partitions: Sequence[TopicPartition], timeout_s: float,
                      backoff_s: float = 0.5) -> list[TopicPartition]:
    """``consumer.committed(partitions)``, asked again (first after about ``backoff_s``, then
    backing off, :mod:`streamrec.retry`) while the group coordinator is moving or loading (or
    librdkafka marks the error retriable), for up to ``timeout_s`` in all; any other error, or
    the same one past the deadline, is raised."""
    deadline = time.monotonic() + timeout_s

    def ask() -> list[TopicPartition]:
        found: list[TopicPartition] = consumer.committed(list(partitions),
                                                         timeout=max(deadline - time.monotonic(), 0.1))
        return found

    return retry(ask, retriable=_coordinator_changing, timeout_s=timeout_s, first_s=backoff_s)


def _coordinator_changing(exc: Exception) -> bool:
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and (error.code() in COORDINATOR_CHANGING or error.retriable())
