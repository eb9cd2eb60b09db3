"""Everything the service writes to Kafka, and proof that it arrived.

Every produce registers a delivery report. :meth:`Publisher.confirm` flushes the producer and
raises :class:`~streamrec.kafka.clients.KafkaServiceError` if any record since the previous
confirm failed or is still undelivered after the timeout, so the caller never commits offsets
past output that might be missing.

Under exactly-once the same records go inside one transaction per batch
(:meth:`begin` / :meth:`commit`); the consumed offsets are sent to the transaction, so the
records and the offsets become visible together or not at all. A transaction that needs
aborting raises :class:`TransactionAborted` after the abort; the caller rewinds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from streamrec.kafka.clients import KafkaServiceError
from streamrec.kafka.messages import DeadLetter
from streamrec.kafka.security import auth_failure, raise_on_auth_exception
from streamrec.recommendations import Recommendation
from streamrec.retry import retry

log = logging.getLogger(__name__)

QUEUE_FULL_WAIT_S = 0.05
TRANSACTION_TIMEOUT_S = 60.0


class TransactionAborted(Exception):
    """The batch's transaction was aborted; nothing of it is visible. Rewind and redo it."""


class Publisher:
    """Produces recommendations, dead letters and changelog records for one service."""

    def __init__(self, producer: Producer, output_topic: str, dead_letter_topic: str, changelog_topic: str,
                 output_format: str = "json", confirm_timeout_s: float = 60.0) -> None:
        self.producer = producer
        self.output_topic = output_topic
        self.dead_letter_topic = dead_letter_topic
        self.changelog_topic = changelog_topic
        self.output_format = output_format
        self.confirm_timeout_s = confirm_timeout_s
        self._lock = threading.Lock()  # delivery reports arrive on whichever thread polls
        self._failures: list[str] = []
        self._refused: list[Exception] = []  # deliveries refused for a missing ACL

    # -- records -----------------------------------------------------------------------------

    def recommendation(self, rec: Recommendation) -> None:
        value = rec.to_msgpack() if self.output_format == "msgpack" else rec.to_json().encode()
        self._produce(self.output_topic, value, key=rec.user_id.encode())

    def dead_letter(self, letter: DeadLetter) -> None:
        self._produce(self.dead_letter_topic, letter.value, key=letter.key, headers=letter.headers)

    def changelog(self, partition: int, user_id: str, snapshot: bytes | None) -> None:
        """The user's window (None: a tombstone) into the changelog partition of their input partition."""
        self._produce(self.changelog_topic, snapshot, key=user_id.encode(), partition=partition)

    def forget(self, partition: int, user_id: str) -> None:
        """Tombstones for a forgotten user: their changelog record and their recommendation."""
        self.changelog(partition, user_id, None)
        self._produce(self.output_topic, None, key=user_id.encode())

    def _produce(self, topic: str, value: bytes | None, **kwargs: Any) -> None:
        while True:
            try:
                self.producer.produce(topic, value, on_delivery=self._on_delivery, **kwargs)
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(QUEUE_FULL_WAIT_S)
            except KafkaException as exc:  # a transaction already failed by an earlier record
                raise_on_auth_exception(exc, f"write to topic {topic!r}")
                if not exc.args[0].txn_requires_abort():
                    raise
                log.warning("produce needs an abort: %s", exc.args[0])
                self.abort()
                raise TransactionAborted(str(exc.args[0])) from exc

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            refused = auth_failure(error, f"write to topic {message.topic()!r}")
            with self._lock:
                self._failures.append(f"{message.topic()}[{message.partition()}]: {error.str()}")
                if refused is not None:
                    self._refused.append(refused)

    # -- at-least-once -----------------------------------------------------------------------

    def confirm(self) -> None:
        """Wait for every record produced so far; raise if any is not delivered."""
        remaining = self.producer.flush(self.confirm_timeout_s)
        with self._lock:
            failures, self._failures = self._failures, []
            refused, self._refused = self._refused, []
        if refused:
            raise refused[0]
        if failures:
            raise KafkaServiceError(f"{len(failures)} record(s) were not delivered, first: {failures[0]}; "
                                    "offsets of this batch are not committed")
        if remaining:
            raise KafkaServiceError(f"{remaining} record(s) still undelivered after {self.confirm_timeout_s:.0f}s; "
                                    "offsets of this batch are not committed")

    # -- exactly-once ------------------------------------------------------------------------

    def init_transactions(self) -> None:
        self._transactional("init_transactions", lambda: self.producer.init_transactions(TRANSACTION_TIMEOUT_S))

    def begin(self) -> None:
        self._transactional("begin_transaction", self.producer.begin_transaction)

    def commit(self, offsets: Sequence[TopicPartition], group_metadata: object) -> None:
        """Send the consumed offsets to the transaction and commit it."""
        def send_and_commit() -> None:
            if offsets:
                self.producer.send_offsets_to_transaction(list(offsets), group_metadata, TRANSACTION_TIMEOUT_S)
            self.producer.commit_transaction(TRANSACTION_TIMEOUT_S)

        self._transactional("commit_transaction", send_and_commit)
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:  # commit_transaction fails when a record fails, so this is belt and braces
            raise KafkaServiceError(f"transaction committed with {len(failures)} failed record(s): {failures[0]}")

    def _transactional(self, what: str, call: Callable[[], object]) -> None:
        """``call()``, retried with backoff on retriable errors (5 attempts); an error that needs an
        abort aborts and raises :class:`TransactionAborted`; any other raises."""
        try:
            retry(call, retriable=_retriable, attempts=5, first_s=0.1, what=what)
        except KafkaException as exc:
            with self._lock:
                refused = self._refused[:1]
            if refused:  # a record refused for a missing ACL failed the transaction
                raise refused[0] from exc
            raise_on_auth_exception(exc, f"{what.replace('_', ' ')} with this transactional id")
            error: KafkaError = exc.args[0]
            if error.txn_requires_abort():
                log.warning("%s needs an abort: %s", what, error)
                self.abort()
                raise TransactionAborted(str(error)) from exc
            raise KafkaServiceError(f"{what} failed{' (fatal)' if error.fatal() else ''}: {error}") from exc

    def abort(self) -> None:
        try:
            self.producer.abort_transaction(TRANSACTION_TIMEOUT_S)
        except KafkaException as exc:
            raise KafkaServiceError(f"abort_transaction failed: {exc.args[0]}") from exc
        finally:
            with self._lock:
                self._failures, self._refused = [], []


def _retriable(exc: Exception) -> bool:
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(error, KafkaError) and error.retriable() and not error.txn_requires_abort()
