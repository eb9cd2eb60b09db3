"""Consumed offsets: the committed-offsets lookup asks again while the coordinator moves."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamrec.kafka.offsets import Committer, committed_offsets


class _Consumer:
    """Answers ``committed()`` with the queued errors first, then the offsets."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.calls = 0

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return [TopicPartition(tp.topic, tp.partition, 7) for tp in partitions]


def test_committed_offsets_asks_again_while_the_coordinator_moves() -> None:
    consumer = _Consumer(KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    found = committed_offsets(consumer, [TopicPartition("t", 0), TopicPartition("t", 1)],  # type: ignore[arg-type]
                              timeout_s=5, backoff_s=0.01)
    assert [(tp.partition, tp.offset) for tp in found] == [(0, 7), (1, 7)]
    assert consumer.calls == 3


def test_committed_offsets_raises_other_errors_at_once_and_gives_up_at_the_deadline() -> None:
    denied = _Consumer(KafkaError.GROUP_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        committed_offsets(denied, [TopicPartition("t", 0)], timeout_s=5, backoff_s=0.01)  # type: ignore[arg-type]
    assert denied.calls == 1
    stuck = _Consumer(*[KafkaError.NOT_COORDINATOR] * 1000)
    with pytest.raises(KafkaException):
        committed_offsets(stuck, [TopicPartition("t", 0)], timeout_s=0.2, backoff_s=0.05)  # type: ignore[arg-type]
    assert 2 <= stuck.calls <= 5


class _Committing:
    """``commit()`` fails with the queued errors first, then records what it was asked to commit."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.committed: list[list[tuple[int, int]]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        assert not asynchronous
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        self.committed.append([(tp.partition, tp.offset) for tp in offsets])
        return offsets


def test_offsets_a_failed_commit_left_go_with_the_next_commit_for_partitions_still_assigned() -> None:
    consumer = _Committing(KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION)
    committer = Committer(consumer, "t")  # type: ignore[arg-type]
    assert committer.commit({0: 10, 1: 5}, assigned={0, 1, 2}) is False  # during a rebalance
    assert committer.pending == {0: 10, 1: 5}
    assert committer.commit({0: 12}, assigned={0, 1, 2}) is False
    assert committer.commit({}, assigned={0, 2}) is True  # partition 1 went to another member: it redoes it
    assert consumer.committed == [[(0, 12)]] and committer.pending == {}
    assert committer.commit({}, assigned={0}) is None  # nothing to commit
