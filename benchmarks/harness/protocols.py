"""The two evaluation protocols, run over all models in one pass.

**Prequential** (test-then-train), as :func:`streamrec.replay.replay` scores it: the log is cut
into micro-batches of ``batch_size`` in time order. Before a batch is learned, each of its
positive events whose user was touched by an earlier batch is scored against the latest list
each model published for that user (a model that published nothing misses). Then every
model learns the batch and publishes a fresh top-``k`` for each user the batch touched,
excluding the items those users have seen so far (the same items for every model).

**Leave-last-out** (the offline protocol of SASRec/HSTU tables): each user's last event is
held out (users with at least ``min_events`` events whose last event is positive); every
other event is streamed through the models in time order, in micro-batches; then each model
ranks the whole catalogue for every held-out user, excluding the items seen in training.

Both record, per model, the 0-based rank of each scored event's item (``-1``: not in the
top ``k``) and the same slice masks, so models are compared on identical events; and the user
of each scored event, so comparisons can be bootstrapped over users
(:func:`~harness.quality.paired_bootstrap`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.models import StreamingModel
from harness.quality import SLICES, sliced_metrics
from harness.stream import StreamState
from streamrec.events import Event

Positive = Callable[[Event], bool]


@dataclass
class ProtocolResult:
    """Ranks of every scored event for every model, plus what the models cost."""

    protocol: str
    k: int
    events: int  # events in the log the protocol saw
    ranks: dict[str, np.ndarray]  # model -> (scored,) ranks
    slices: dict[str, np.ndarray]  # slice -> (scored,) bool mask
    positions: np.ndarray  # (scored,) index in the log of each scored event
    coverage: dict[str, float]  # model -> distinct items recommended / catalogue size
    seconds: dict[str, float]  # model -> wall seconds spent in learn + recommend
    cpu_seconds: dict[str, float]  # model -> process CPU seconds (all threads) in learn + recommend
    n_items: int
    users: int
    groups: np.ndarray  # (scored,) the user of each scored event, as an ordinal
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> int:
        return len(self.positions)

    def metrics(self) -> dict[str, dict[str, Any]]:
        """model -> {"all": {...}, slice: {...}, "coverage@k": ..., "seconds": ...}."""
        out: dict[str, dict[str, Any]] = {}
        for name, ranks in self.ranks.items():
            out[name] = {**sliced_metrics(ranks, self.slices, self.k),
                         f"coverage@{self.k}": self.coverage[name], "seconds": self.seconds[name],
                         "cpu_seconds": self.cpu_seconds[name]}
        return out


def _all_positive(event: Event) -> bool:
    return True


def _publish(model: StreamingModel, users: Sequence[str], k: int, exclude: Sequence[Collection[str]]
             ) -> list[list[str]]:
    lists = model.recommend(users, k, exclude)
    if len(lists) != len(users):
        raise ValueError(f"model {model.name!r} returned {len(lists)} lists for {len(users)} users")
    return [list(ranked[:k]) for ranked in lists]


def run_prequential(
    events: Sequence[Event],
    models: Sequence[StreamingModel],
    batch_size: int,
    k: int = 10,
    catalogue: Iterable[str] = (),
    positive: Positive = _all_positive,
    exclude_actions: Collection[str] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> ProtocolResult:
    """Score every model prequentially in one pass over ``events`` (time-ordered).

    ``catalogue`` is the item ids known before the stream (the log's item file); items first
    seen in events join it. ``on_batch(done, total)`` reports progress in events.
    """
    _check_names(models)
    state = StreamState(catalogue, exclude_actions)
    latest: dict[str, dict[str, dict[str, int]]] = {m.name: {} for m in models}
    recommended: dict[str, set[str]] = {m.name: set() for m in models}
    seconds = dict.fromkeys(latest, 0.0)
    cpu = dict.fromkeys(latest, 0.0)
    ranks: dict[str, list[int]] = {m.name: [] for m in models}
    flags: list[tuple[bool, ...]] = []
    positions: list[int] = []
    groups: list[int] = []
    group_of: dict[str, int] = {}
    published: set[str] = set()
    for start in range(0, len(events), batch_size):
        batch = events[start:start + batch_size]
        for offset, event in enumerate(batch):
            if event.user_id not in published or not positive(event):
                continue
            positions.append(start + offset)
            groups.append(group_of.setdefault(event.user_id, len(group_of)))
            flags.append(state.flags(event))
            for model in models:
                ranks[model.name].append(latest[model.name].get(event.user_id, {}).get(event.item_id, -1))
        state.learn(batch)
        touched = list(dict.fromkeys(e.user_id for e in batch))
        exclude = [state.seen(u) for u in touched]
        for model in models:
            started, cpu_started = time.perf_counter(), time.process_time()
            model.learn(batch)
            lists = _publish(model, touched, k, exclude)
            seconds[model.name] += time.perf_counter() - started
            cpu[model.name] += time.process_time() - cpu_started
            for user, ranked in zip(touched, lists, strict=True):
                latest[model.name][user] = {item: rank for rank, item in enumerate(ranked)}
                recommended[model.name].update(ranked)
        published.update(touched)
        if on_batch is not None:
            on_batch(start + len(batch), len(events))
    return ProtocolResult(
        protocol="prequential", k=k, events=len(events),
        ranks={name: np.array(r, dtype=np.int64) for name, r in ranks.items()},
        slices=_slice_masks(flags), positions=np.array(positions, dtype=np.int64),
        coverage={name: len(items) / max(state.n_items, 1) for name, items in recommended.items()},
        seconds=seconds, cpu_seconds=cpu, n_items=state.n_items, users=len(state.users()),
        groups=np.array(groups, dtype=np.int64))


@dataclass(frozen=True)
class LeaveLastOutSplit:
    train: list[Event]  # time-ordered
    held_out: list[Event]  # one per evaluated user, in user order of first appearance
    held_out_positions: list[int]  # each held-out event's index in the full log


def split_leave_last_out(events: Sequence[Event], min_events: int = 2, positive: Positive = _all_positive
                         ) -> LeaveLastOutSplit:
    """Hold out each user's last event (the last in log order among equal timestamps).

    Users with fewer than ``min_events`` events, or whose last event is not positive, keep all
    their events in training and are not evaluated.

    >>> log = [Event("u1", "a", "view", 1), Event("u2", "b", "view", 2), Event("u1", "c", "view", 3)]
    >>> split = split_leave_last_out(log)
    >>> [e.item_id for e in split.train], [e.item_id for e in split.held_out]
    (['a', 'b'], ['c'])
    """
    last: dict[str, int] = {}
    counts: dict[str, int] = {}
    for position, event in enumerate(events):
        last[event.user_id] = position
        counts[event.user_id] = counts.get(event.user_id, 0) + 1
    held = sorted(p for u, p in last.items() if counts[u] >= min_events and positive(events[p]))
    held_set = set(held)
    train = [e for p, e in enumerate(events) if p not in held_set]
    first_seen = {u: i for i, u in enumerate(dict.fromkeys(e.user_id for e in events))}
    held.sort(key=lambda p: first_seen[events[p].user_id])
    return LeaveLastOutSplit(train, [events[p] for p in held], held)


def run_leave_last_out(
    split: LeaveLastOutSplit,
    models: Sequence[StreamingModel],
    batch_size: int,
    k: int = 10,
    catalogue: Iterable[str] = (),
    exclude_actions: Collection[str] | None = None,
    rank_chunk: int = 256,
    on_batch: Callable[[int, int], None] | None = None,
) -> ProtocolResult:
    """Stream ``split.train`` through every model, call ``finish()`` on those that have it (a warm start
    trains there), then rank the full catalogue for each held-out user."""
    _check_names(models)
    state = StreamState(catalogue, exclude_actions)
    seconds = {m.name: 0.0 for m in models}
    cpu = {m.name: 0.0 for m in models}
    for start in range(0, len(split.train), batch_size):
        batch = split.train[start:start + batch_size]
        state.learn(batch)
        for model in models:
            started, cpu_started = time.perf_counter(), time.process_time()
            model.learn(batch)
            seconds[model.name] += time.perf_counter() - started
            cpu[model.name] += time.process_time() - cpu_started
        if on_batch is not None:
            on_batch(start + len(batch), len(split.train))
    for model in models:  # a model that learns from the whole history at once does it now
        finish = getattr(model, "finish", None)
        if finish is not None:
            started, cpu_started = time.perf_counter(), time.process_time()
            finish()
            seconds[model.name] += time.perf_counter() - started
            cpu[model.name] += time.process_time() - cpu_started
    users = [e.user_id for e in split.held_out]
    for event in split.held_out:  # items first seen in a held-out event are still candidates
        state.index_of(event.item_id)
    ranks: dict[str, list[int]] = {m.name: [] for m in models}
    recommended: dict[str, set[str]] = {m.name: set() for m in models}
    for start in range(0, len(users), rank_chunk):
        chunk = split.held_out[start:start + rank_chunk]
        chunk_users = users[start:start + rank_chunk]
        exclude = [state.seen(u) for u in chunk_users]
        for model in models:
            started, cpu_started = time.perf_counter(), time.process_time()
            lists = _publish(model, chunk_users, k, exclude)
            seconds[model.name] += time.perf_counter() - started
            cpu[model.name] += time.process_time() - cpu_started
            for event, ranked in zip(chunk, lists, strict=True):
                ranks[model.name].append(ranked.index(event.item_id) if event.item_id in ranked else -1)
                recommended[model.name].update(ranked)
    return ProtocolResult(
        protocol="leave-last-out", k=k, events=len(split.train) + len(split.held_out),
        ranks={name: np.array(r, dtype=np.int64) for name, r in ranks.items()},
        slices=_slice_masks([state.flags(e) for e in split.held_out]),
        positions=np.array(split.held_out_positions, dtype=np.int64),
        coverage={name: len(items) / max(state.n_items, 1) for name, items in recommended.items()},
        seconds=seconds, cpu_seconds=cpu, n_items=state.n_items, users=len(users),
        groups=np.arange(len(users), dtype=np.int64))  # one held-out event per user


def _slice_masks(flags: list[tuple[bool, ...]]) -> dict[str, np.ndarray]:
    table = np.array(flags, dtype=bool).reshape(-1, len(SLICES))
    return {name: table[:, column] for column, name in enumerate(SLICES)}


def _check_names(models: Sequence[StreamingModel]) -> None:
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
