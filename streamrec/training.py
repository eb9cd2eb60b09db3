"""Warm start from history: train a pipeline on a recorded log for several epochs before it serves.

A team that deploys streamrec has months of logs. :func:`train` learns them the way the stream
would, then goes over them again where that is sound:

* **Epoch 1** streams the log through :meth:`Pipeline.process` in micro-batches, exactly as a
  replay does: the head, the ranker, the co-occurrence index, popularity and the users' windows
  all learn, each event once. The head records the examples it learned from: each positive
  event's window vectors as they were before the event, its recent items, item and weight.
* **Epochs 2..N** train the head again on those examples, shuffled, in micro-batches of the same
  size. Co-occurrence, popularity and windows are counts of what happened, so they are not
  counted twice; the ranker keeps what the first pass taught it (a second pass would show it
  co-occurrence that already holds the very pair it learns from).
* **Validation**: each user's last positive event (users with at least ``min_events`` events) is
  held out of training. After every epoch the pipeline ranks for those users and hit@K and
  ndcg@K are measured; the head of the best epoch is kept, and training stops after
  ``patience`` epochs without a gain. Then the held-out events are learned too (one pass, as the
  stream would), so the state saved has seen the whole log.

``streamrec train LOG --epochs N --state-dir DIR`` runs it and saves the state; ``replay`` and
``run`` with the same ``--state-dir`` start from it and keep learning on the stream.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from streamrec.config import Settings
from streamrec.errors import UsageError
from streamrec.events import Event
from streamrec.head import Example
from streamrec.pipeline import Pipeline

log = logging.getLogger(__name__)

#: Called after each epoch with (epoch, its report) and within one with (done, total) events.
EpochCallback = Callable[["Epoch"], None]
BatchCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Epoch:
    epoch: int
    loss: float  # the head's mean loss over the epoch's updates
    seconds: float
    validation: dict[str, float]  # hit@K, ndcg@K, users ({} without validation)


@dataclass
class TrainReport:
    epochs: list[Epoch] = field(default_factory=list)
    best_epoch: int = 0
    examples: int = 0  # the head's examples recorded in epoch 1
    trained_events: int = 0
    validation_events: int = 0
    k: int = 10

    def to_dict(self) -> dict[str, object]:
        return {"best_epoch": self.best_epoch, "examples": self.examples, "trained_events": self.trained_events,
                "validation_events": self.validation_events, "k": self.k,
                "epochs": [{"epoch": e.epoch, "loss": e.loss, "seconds": e.seconds, **e.validation}
                           for e in self.epochs]}


def hold_out_last(events: Sequence[Event], is_positive: Callable[[str], bool],
                  min_events: int = 3) -> tuple[list[Event], list[Event]]:
    """``(train, held)``: each user's last event held out when it is positive and the user has at
    least ``min_events`` events; both in the log's order.

    >>> log = [Event("u", i, "purchase", t) for t, i in enumerate("abc")] + [Event("v", "a", "purchase", 9)]
    >>> train, held = hold_out_last(log, lambda action: True)
    >>> [e.item_id for e in train], [(e.user_id, e.item_id) for e in held]
    (['a', 'b', 'a'], [('u', 'c')])
    """
    last: dict[str, int] = {}
    counts: dict[str, int] = {}
    for position, event in enumerate(events):
        last[event.user_id] = position
        counts[event.user_id] = counts.get(event.user_id, 0) + 1
    held = {p for user, p in last.items() if counts[user] >= min_events and is_positive(events[p].action)}
    return ([e for p, e in enumerate(events) if p not in held], [e for p, e in enumerate(events) if p in held])


def validate(pipeline: Pipeline, held: Sequence[Event], k: int, chunk: int = 256) -> dict[str, float]:
    """hit@k and ndcg@k of the pipeline's lists for the held-out events' users (one event each)."""
    hits = gains = 0.0
    for start in range(0, len(held), chunk):
        part = held[start:start + chunk]
        lists = {rec.user_id: [item.item_id for item in rec.items]
                 for rec in pipeline.recommend([e.user_id for e in part])}
        for event in part:
            ranked = lists.get(event.user_id, [])[:k]
            if event.item_id in ranked:
                hits += 1.0
                gains += 1.0 / math.log2(ranked.index(event.item_id) + 2.0)
    users = max(len(held), 1)
    return {f"hit@{k}": hits / users, f"ndcg@{k}": gains / users, "users": float(len(held))}


def train(
    pipeline: Pipeline,
    events: Sequence[Event],
    epochs: int,
    *,
    batch_size: int | None = None,
    validation: bool = True,
    patience: int = 2,
    min_events: int = 3,
    on_epoch: EpochCallback | None = None,
    on_batch: BatchCallback | None = None,
) -> TrainReport:
    """Train ``pipeline`` on ``events`` (time-ordered) for up to ``epochs`` epochs; see the module docstring."""
    if epochs < 1:
        raise UsageError(f"epochs must be >= 1, got {epochs}")
    batch_size = batch_size or pipeline.settings.batch.max_size
    k = pipeline.settings.retrieval.k
    is_positive = pipeline.vocab.is_positive
    train_events, held = hold_out_last(events, is_positive, min_events) if validation else (list(events), [])
    report = TrainReport(trained_events=len(train_events), validation_events=len(held), k=k)
    recorded: list[Example] = []
    pipeline.head.recorded = recorded
    started, losses = time.perf_counter(), []
    try:
        for start in range(0, len(train_events), batch_size):
            result = pipeline.process(train_events[start:start + batch_size])
            if result.loss is not None:
                losses.append(result.loss)
            if on_batch is not None:
                on_batch(min(start + batch_size, len(train_events)), len(train_events))
    finally:
        pipeline.head.recorded = None
    examples = Example.concat(recorded) if recorded else None  # once: every later epoch reads the same rows
    recorded.clear()
    report.examples = 0 if examples is None else len(examples.items)
    best: tuple[float, dict[str, torch.Tensor] | None] = (-1.0, None)
    for epoch in range(1, epochs + 1):
        if epoch > 1:
            started, losses = time.perf_counter(), _head_epoch(pipeline, examples, batch_size, epoch, on_batch)
        scores = validate(pipeline, held, k) if held else {}
        done = Epoch(epoch, sum(losses) / len(losses) if losses else math.nan, time.perf_counter() - started, scores)
        report.epochs.append(done)
        if on_epoch is not None:
            on_epoch(done)
        if not held:
            report.best_epoch = epoch
            continue
        if scores[f"ndcg@{k}"] > best[0]:
            best = (scores[f"ndcg@{k}"], copy.deepcopy(pipeline.head.model.state_dict()))
            report.best_epoch = epoch
        elif epoch - report.best_epoch >= patience:
            break
    if best[1] is not None and report.best_epoch != report.epochs[-1].epoch:
        pipeline.head.model.load_state_dict(best[1])  # the weights in place: the optimizer keeps its references
        pipeline.head.version += 1
        if pipeline.served is not None:  # the last validation's rows were ranked by the head just replaced
            pipeline.served.forget({event.user_id for event in held})
    for start in range(0, len(held), batch_size):  # the held-out events, learned as the stream would
        pipeline.process(held[start:start + batch_size])
    return report


def _head_epoch(pipeline: Pipeline, examples: Example | None, batch_size: int, epoch: int,
                on_batch: BatchCallback | None) -> list[float]:
    """One more pass of the head over the recorded examples, shuffled (a fixed seed per epoch)."""
    if examples is None:
        return []
    order = torch.randperm(len(examples.items), generator=torch.Generator().manual_seed(epoch))
    item_vectors = pipeline.item_vectors
    item_text = item_vectors.current() if item_vectors.lazy else item_vectors.matrix()
    losses = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = Example(examples.vectors[rows], examples.recent[rows], examples.items[rows], examples.weights[rows])
        losses.append(pipeline.head.learn(batch, item_text))
        if on_batch is not None:
            on_batch(min(start + batch_size, len(order)), len(order))
    return losses


def train_files(
    settings: Settings,
    log_path: str | Path,
    state_dir: str | Path,
    epochs: int,
    catalog_path: str | Path | None = None,
    log_format: str = "auto",
    column_map: Mapping[str, str] | None = None,
    limit: int | None = None,
    *,
    validation: bool = True,
    patience: int = 2,
    progress: bool = True,
    domain_given: bool = True,
) -> TrainReport:
    """Everything ``streamrec train`` does: read, train, save the state and ``training.json`` in ``state_dir``."""
    from streamrec.replay import open_log
    from streamrec.state import HEAD_FILE

    state = Path(state_dir)
    if (state / HEAD_FILE).exists():
        raise UsageError(f"{state} already holds a trained state; train into an empty directory (replay and run "
                         "continue from a state, train starts one)")
    pipeline, recorded = open_log(settings, log_path, catalog_path, log_format, column_map, limit, domain_given)
    if not recorded.events:
        raise UsageError(f"log {str(log_path)!r} holds no valid events ({len(recorded.rejected)} rejected)")
    bar = tqdm(total=len(recorded.events), unit="ev", desc="epoch 1", disable=not progress, leave=False)

    def on_batch(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    def on_epoch(epoch: Epoch) -> None:
        shown = ", ".join(f"{name} {value:.4f}" for name, value in epoch.validation.items() if name != "users")
        line = f"epoch {epoch.epoch}: loss {epoch.loss:.3f}, {epoch.seconds:.0f} s"
        bar.write(line + (f", {shown}" if shown else ""))
        bar.reset()
        bar.set_description(f"epoch {epoch.epoch + 1}")

    try:
        report = train(pipeline, recorded.events, epochs, validation=validation, patience=patience,
                       on_epoch=on_epoch, on_batch=on_batch)
    finally:
        bar.close()
    pipeline.save(state)
    (state / "training.json").write_text(json.dumps(
        {**report.to_dict(), "log": str(log_path), "encoder": pipeline.settings.encoder.model,
         "domain": pipeline.settings.domain, "rejected_records": len(recorded.rejected)}, indent=2) + "\n",
        encoding="utf-8")
    log.info("trained %d epochs (best %d) on %d events; state in %s", len(report.epochs), report.best_epoch,
             report.trained_events + report.validation_events, state)
    return report
