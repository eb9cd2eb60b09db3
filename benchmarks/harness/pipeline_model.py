"""streamrec's :class:`~streamrec.pipeline.Pipeline` behind the harness's model protocol.

``learn(batch)`` is exactly one :meth:`Pipeline.process` call; its recommendations (made
after the batch was learned) are what ``recommend`` returns for the users it touched. Other
users are ranked fresh with :meth:`Pipeline.recommend`.

The pipeline excludes the items in its own window store; the harness sizes that store so
its memory covers every user's history, and the adapter checks each list against the
harness's exclusions (dropping and counting any item that slips through, expected none).

Two encoders help a run hold several pipelines: :class:`CachedEncoder` lets pipelines that
see the same windows share one forward pass per text, and :class:`ZeroEncoder` stands in
for the encoder of an ids-only head, which never reads encoder vectors.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection, Sequence

import torch

from streamrec.encoding import TextEncoder
from streamrec.errors import ConfigError
from streamrec.events import Event
from streamrec.pipeline import Pipeline


class PipelineModel:
    """A :class:`Pipeline` as a :class:`~harness.models.StreamingModel`."""

    def __init__(self, pipeline: Pipeline, name: str = "streamrec", rank_chunk: int = 256) -> None:
        self.pipeline = pipeline
        self.name = name
        self.rank_chunk = rank_chunk
        self.seconds = {"encode": 0.0, "train": 0.0, "rank": 0.0}
        self.exclusion_mismatches = 0
        self.losses: list[float] = []
        self._fresh: dict[str, list[str]] = {}

    def learn(self, events: Sequence[Event]) -> None:
        result = self.pipeline.process(events)
        self._fresh = {rec.user_id: [item.item_id for item in rec.items] for rec in result.recommendations}
        for stage, value in result.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + value
        if result.loss is not None:
            self.losses.append(result.loss)

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Sequence[Collection[str]]) -> list[list[str]]:
        if k > self.pipeline.settings.retrieval.k:
            raise ConfigError(f"the pipeline publishes {self.pipeline.settings.retrieval.k} items, not {k}: "
                              "set retrieval.k")
        missing = [u for u in user_ids if u not in self._fresh]
        for start in range(0, len(missing), self.rank_chunk):
            started = time.perf_counter()
            chunk = missing[start:start + self.rank_chunk]
            for rec in self.pipeline.recommend(chunk):
                self._fresh[rec.user_id] = [item.item_id for item in rec.items]
            self.seconds["rank"] += time.perf_counter() - started
        lists = []
        for user, seen in zip(user_ids, exclude, strict=True):
            ranked = self._fresh.get(user, [])
            kept = [item for item in ranked if item not in seen]
            self.exclusion_mismatches += len(ranked) - len(kept)
            lists.append(kept[:k])
        return lists

    def diagnostics(self) -> dict[str, object]:
        out: dict[str, object] = {
            "seconds": dict(self.seconds), "exclusion_mismatches": self.exclusion_mismatches,
            "model_version": self.pipeline.head.version, "ranker_weights": self.pipeline.ranker.weights_by_feature(),
            "final_loss": self.losses[-1] if self.losses else None}
        stats = getattr(self.pipeline.window_encoder, "stats", None)  # incremental and item modes count their work
        if stats is not None:
            out["window_encoder"] = {
                "forwards": stats.forwards, "appended_positions": stats.appended_positions,
                "reset_positions": stats.reset_positions, "resets": dict(stats.resets),
                "evictions": stats.evictions, "peak_cache_bytes": stats.peak_cache_bytes}
        return out


class WarmPipelineModel(PipelineModel):
    """A pipeline warm-started from the history: ``learn`` only collects the training events; ``finish``
    (called by the leave-last-out protocol before it ranks) runs :func:`streamrec.training.train` on them,
    up to ``epochs`` epochs with its own validation split (each user's last training event) and early
    stopping, as ``streamrec train`` does. Only leave-last-out has a history to start from."""

    def __init__(self, pipeline: Pipeline, name: str = "streamrec-warm", epochs: int = 5,
                 rank_chunk: int = 256) -> None:
        super().__init__(pipeline, name, rank_chunk)
        self.epochs = epochs
        self.history: list[Event] = []
        self.report: dict[str, object] = {}

    def learn(self, events: Sequence[Event]) -> None:
        self.history.extend(events)

    def finish(self) -> None:
        from streamrec.training import train

        started = time.perf_counter()
        report = train(self.pipeline, self.history, self.epochs)
        self.seconds["train"] += time.perf_counter() - started
        self.report = report.to_dict()
        self.history = []

    def diagnostics(self) -> dict[str, object]:
        return {**super().diagnostics(), "training": self.report}


class CachedEncoder:
    """Remembers the vectors of the last ``max_entries`` texts; encodes only the others.

    >>> class Count:
    ...     dim, calls = 2, 0
    ...     def encode(self, texts):
    ...         self.calls += len(texts)
    ...         return torch.ones(len(texts), 2)
    >>> inner = Count()
    >>> cached = CachedEncoder(inner)
    >>> _ = cached.encode(["a", "b"]), cached.encode(["b", "a", "c", "c"])
    >>> inner.calls, cached.hits
    (3, 3)
    """

    def __init__(self, encoder: TextEncoder, max_entries: int = 50_000) -> None:
        self.encoder = encoder
        self.dim = encoder.dim
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[str, torch.Tensor] = OrderedDict()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return torch.empty(0, self.dim)
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing), strict=True):
                self._vectors[text] = vector.clone()
        out = torch.stack([self._vectors[t] for t in texts])
        for text in texts:
            self._vectors.move_to_end(text)
        while len(self._vectors) > self.max_entries:
            self._vectors.popitem(last=False)
        return out


class ZeroEncoder:
    """Zero vectors of a given size: the encoder of a head with ``text_features=False``,
    whose outputs nothing reads (the switch keeps text out of every score)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.zeros(len(texts), self.dim)
