"""Test your own integration with streamrec in a few lines, with no broker and no model hub.

* :class:`ListSource` (a list of events in micro-batches) and :class:`ListSink` (keeps every
  batch's result) for :class:`~streamrec.runner.Runner`;
* :class:`ManualClock`, for the pipeline's wall clock (``produced_at``) and anything else that
  takes a ``clock``;
* :func:`tiny_model`, a tiny random GPT-2 saved like a hub model and loaded through
  ``from_pretrained``; :func:`tiny_pipeline` builds a whole pipeline on it.

>>> import tempfile
>>> from streamrec.synthetic import generate
>>> from streamrec.testing import ListSink, ListSource, ManualClock, Runner, tiny_pipeline
>>> log = generate(n_users=12, n_items=20, events_per_user=(3, 6), seed=1)
>>> clock = ManualClock(1_700_000_000.0)
>>> with tempfile.TemporaryDirectory() as tmp:
...     pipeline = tiny_pipeline(log.items, tmp, clock=clock)
...     sink = ListSink()
...     Runner(pipeline, ListSource(log.events, size=16), sink).run()
>>> sink.events == len(log.events)
True
>>> last = sink.recommendations[-1]
>>> last.produced_at, last.text.startswith("Recommended for you:"), len(last.items)
(1700000000000, True, 10)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamrec.catalog import Catalog, Item
from streamrec.config import load_settings
from streamrec.recommendations import Recommendation
from streamrec.runner import EventBatch, ListSource, Runner, SourceBatch
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

if TYPE_CHECKING:  # the pipeline imports torch: only when a pipeline is built
    from streamrec.pipeline import BatchResult, Pipeline

__all__ = ["EventBatch", "ListSink", "ListSource", "ManualClock", "Runner", "tiny_model", "tiny_pipeline"]


@dataclass
class ListSink:
    """Keeps what the runner delivers: every batch's result, in order."""

    results: list[BatchResult] = field(default_factory=list)
    events: int = 0  # valid events delivered

    def write(self, batch: SourceBatch, result: BatchResult, lost: Collection[int]) -> None:
        self.results.append(result)
        self.events += len(batch.events)

    @property
    def recommendations(self) -> list[Recommendation]:
        return [rec for result in self.results for rec in result.recommendations]


class ManualClock:
    """A clock that moves only when told: ``clock()`` returns seconds, ``advance(s)`` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def tiny_model(items: Iterable[Item], out_dir: str | Path, **shape: Any) -> Path:
    """A tiny random GPT-2 (2 layers, 64 wide) whose tokenizer knows ``items``' texts, saved to
    ``out_dir``; ``shape`` goes to :func:`~streamrec.tinymodel.build_tiny_gpt2`."""
    shape.setdefault("vocab_size", 800)
    return build_tiny_gpt2(tokenizer_corpus(list(items)), out_dir, **shape)


def tiny_pipeline(items: Sequence[Item], out_dir: str | Path, clock: Callable[[], float] | None = None,
                  **settings: Any) -> Pipeline:
    """A pipeline on a :func:`tiny_model` built in ``out_dir``, with ``settings`` as overrides
    of the defaults (as :func:`~streamrec.config.load_settings` takes them)."""
    from streamrec.encoding import HFEncoder
    from streamrec.pipeline import Pipeline

    model = tiny_model(items, Path(out_dir) / "tiny-gpt2")
    config = load_settings(encoder={"model": str(model), **settings.pop("encoder", {})}, **settings)
    return Pipeline(config, HFEncoder(config.encoder), Catalog(items), clock=clock or time.time)
