"""One micro-batch of consumed messages, split into what the pipeline and the outputs need.

Messages keep their consumed order, which is offset order within each partition; since events
are keyed by ``user_id``, each user's events reach the pipeline in partition order. For every
user the batch remembers where their newest event came from (``source``: topic, partition,
offset, the message's timestamp and when it was consumed, both epoch ms); it goes into the
user's recommendation.

A forget request (:mod:`streamrec.forget`) is not an event: the batch lists it in ``forget`` and
drops the user's events that came before it, so the pipeline never learns from them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from streamrec.errors import DecodeError, EventError
from streamrec.events import ActionVocabulary, Event, InputFormat
from streamrec.forget import is_forget_request
from streamrec.kafka.messages import event_from_message


@dataclass(frozen=True)
class Received:
    message: Message
    consumed_at: int  # epoch ms


@dataclass(frozen=True)
class BadMessage:
    message: Message
    error: EventError


@dataclass
class Batch:
    events: list[Event] = field(default_factory=list)
    origins: list[dict[str, Any]] = field(default_factory=list)  # each event's: topic, partition, offset...
    bad: list[BadMessage] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)  # partition -> last offset + 1
    users: dict[int, set[str]] = field(default_factory=dict)  # partition -> users with events in it
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # user -> their newest event's origin
    good: Counter[int] = field(default_factory=Counter)  # partition -> valid events
    forget: list[tuple[int, str]] = field(default_factory=list)  # (partition, user) asked to be forgotten
    size: int = 0

    @classmethod
    def assemble(cls, received: Sequence[Received], vocab: ActionVocabulary, wire_format: InputFormat,
                 max_event_bytes: int) -> Batch:
        batch = cls(size=len(received))
        for item in received:
            message = item.message
            partition, offset = int(message.partition() or 0), int(message.offset() or 0)
            batch.next_offsets[partition] = max(batch.next_offsets.get(partition, 0), offset + 1)
            if is_forget_request(message.headers()):
                try:
                    batch._forget(partition, message.key())
                except DecodeError as error:
                    batch.bad.append(BadMessage(message, error))
                continue
            try:
                event = event_from_message(message, vocab, wire_format, max_event_bytes)
            except EventError as error:
                batch.bad.append(BadMessage(message, error))
                continue
            origin = {"topic": message.topic(), "partition": partition, "offset": offset,
                      "timestamp": message.timestamp()[1], "consumed_at": item.consumed_at}
            batch.events.append(event)
            batch.origins.append(origin)
            batch.good[partition] += 1
            batch.users.setdefault(partition, set()).add(event.user_id)
            batch.sources[event.user_id] = origin
        return batch

    def _forget(self, partition: int, key: bytes | None) -> None:
        try:
            user = (key or b"").decode()
        except UnicodeDecodeError:
            user = ""
        if not user:
            raise DecodeError("a forget request needs the user id as its key (UTF-8)")
        kept = [(e, o) for e, o in zip(self.events, self.origins, strict=True) if e.user_id != user]
        self.events, self.origins = [e for e, _ in kept], [o for _, o in kept]
        for users in self.users.values():
            users.discard(user)
        self.sources.pop(user, None)
        self.forget.append((partition, user))

    def without(self, partitions: Collection[int]) -> Batch:
        """This batch minus what came from ``partitions`` (lost ones: nothing of theirs is written)."""
        if not partitions:
            return self
        kept = [(e, o) for e, o in zip(self.events, self.origins, strict=True) if o["partition"] not in partitions]
        return Batch(events=[e for e, _ in kept], origins=[o for _, o in kept],
                     bad=[b for b in self.bad if b.message.partition() not in partitions],
                     next_offsets={p: o for p, o in self.next_offsets.items() if p not in partitions},
                     users={p: u for p, u in self.users.items() if p not in partitions},
                     sources={e.user_id: o for e, o in kept},  # each user's newest kept event
                     good=Counter({p: n for p, n in self.good.items() if p not in partitions}),
                     forget=[(p, u) for p, u in self.forget if p not in partitions], size=self.size)
