"""Everything one benchmark run does: build the models, run the protocols, collect results.

Models, by name:

* baselines: ``popularity``, ``recent-popularity``, ``markov``, ``cooccurrence-knn`` (the last
  10 items, decay 0.8), ``cooccurrence-knn-20`` (20 items, decay 0.9), ``cooccurrence-knn-30``
  (30 items, decay 0.85: streamrec's co-occurrence settings, and the best of 12 (history,
  decay) pairs from 10 to 100 items and 0.8 to 1 tried on ml-100k with micro-batches of 64,
  so the strongest cosine kNN there, tuned on the log it is scored on),
  ``cooccurrence-knn-30-asym`` (the same with the asymmetric cosine, alpha 0.8: it favours
  popular candidates, and was the best of alpha 0.3 to 1 on ml-100k, again tuned there),
  ``river-biased-mf``;
* streamrec's pipeline: ``streamrec`` (the settings as given), ``streamrec-ids-only`` (the same
  head with ``text_features=False``: no encoder vectors, no text similarity),
  ``streamrec-text-only`` (``id_features=False``) and ``streamrec-head-only`` (no
  co-occurrence: the head alone, as before the ranker);
* warm-started (leave-last-out only): ``streamrec-warm`` and ``streamrec-ids-only-warm`` collect the
  training events, then train on them as ``streamrec train`` does (up to ``warm_epochs`` epochs,
  early stopping on each user's last training event) before the held-out users are ranked.

Protocols: ``prequential`` (micro-batches of ``batch.max_size``, as the replay runner),
``prequential-per-event`` (batches of one event, baselines only unless
``pipelines_per_event``: a pipeline update per event is slow; this is how the calibration
figures in the notes were measured, and what the Kafka service's adaptive batches amount to
at a trickle) and
``leave-last-out``. Every protocol builds fresh models.

The pipelines that read text share one :class:`CachedEncoder`, so a window text is encoded
once per run however many pipelines (and protocols) see it; the ids-only head gets a
:class:`ZeroEncoder`, since nothing in it reads encoder vectors.
"""

from __future__ import annotations

import functools
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from harness.baselines import CooccurrenceKNN, Markov, Popularity, RecentPopularity
from harness.datasets import Dataset, load_dataset
from harness.models import ScoringModel, StreamingModel
from harness.pipeline_model import CachedEncoder, PipelineModel, WarmPipelineModel, ZeroEncoder
from harness.pretrained import DEFAULT_CACHE, resolve_encoder
from harness.protocols import ProtocolResult, run_leave_last_out, run_prequential, split_leave_last_out
from harness.river_mf import BiasedMF
from streamrec.catalog import Catalog
from streamrec.config import Settings, load_settings
from streamrec.encoding import HFEncoder, TextEncoder
from streamrec.errors import ConfigError
from streamrec.events import ActionVocabulary
from streamrec.pipeline import Pipeline
from streamrec.replay import METRIC_K

BASELINES: dict[str, Callable[..., ScoringModel]] = {
    "popularity": Popularity,
    "recent-popularity": RecentPopularity,
    "markov": Markov,
    "cooccurrence-knn": CooccurrenceKNN,
    # streamrec's earlier co-occurrence settings
    "cooccurrence-knn-20": functools.partial(CooccurrenceKNN, history=20, decay=0.9),
    # streamrec's co-occurrence settings, tuned on ml-100k (see the module docstring)
    "cooccurrence-knn-30": functools.partial(CooccurrenceKNN, history=30, decay=0.85),
    # the same with the asymmetric cosine, also tuned on ml-100k (see the module docstring)
    "cooccurrence-knn-30-asym": functools.partial(CooccurrenceKNN, history=30, decay=0.85, alpha=0.8),
    "river-biased-mf": BiasedMF,
}
#: streamrec variants: head settings over the settings given.
PIPELINES: dict[str, dict[str, Any]] = {
    "streamrec": {},
    "streamrec-ids-only": {"text_features": False},
    "streamrec-text-only": {"id_features": False},
    "streamrec-head-only": {"cooccurrence_history": 0},
}
#: streamrec warm-started from the history (leave-last-out only): ``streamrec train`` on the training events.
WARM: dict[str, dict[str, Any]] = {
    "streamrec-warm": {},
    "streamrec-ids-only-warm": {"text_features": False},
}
MODEL_NAMES = (*BASELINES, *PIPELINES, *WARM)
PROTOCOLS = ("prequential", "prequential-per-event", "leave-last-out")

Progress = Callable[[str, int, int], None]


@dataclass
class SuiteResult:
    dataset: Dataset
    settings: Settings
    protocols: dict[str, ProtocolResult] = field(default_factory=dict)
    diagnostics: dict[str, dict[str, Any]] = field(default_factory=dict)  # protocol -> model -> ...
    wall_seconds: dict[str, float] = field(default_factory=dict)  # protocol -> seconds
    encoder_cache: dict[str, int] = field(default_factory=dict)


def prepare_run(location: str | Dataset, encoder: str, config: str | None = None, threads: int | None = None,
                limit: int | None = None, cache_dir: str = str(DEFAULT_CACHE),
                ) -> tuple[Dataset, Settings, HFEncoder, str]:
    """What a benchmark of the pipeline starts from: the dataset (``location``, or one already
    loaded), the harness's settings (the YAML ``config`` with the dataset's domain and the
    resolved ``encoder``), the loaded encoder and its description."""
    dataset = location if isinstance(location, Dataset) else load_dataset(location, limit)
    model, description = resolve_encoder(encoder, cache_dir)
    settings = load_settings(config, domain=dataset.domain, encoder={"model": model, "threads": threads})
    settings = harness_settings(settings, dataset)
    return dataset, settings, HFEncoder(settings.encoder), description


def harness_settings(settings: Settings, dataset: Dataset, k: int = METRIC_K) -> Settings:
    """``settings`` made fit for scoring: lists of at least ``k`` items, and a seen-item memory
    that covers the longest user history (so the pipeline excludes what the harness excludes)."""
    longest = max(Counter(e.user_id for e in dataset.events).values(), default=0)
    window = settings.window.model_copy(update={"max_seen_items": max(settings.window.max_seen_items, longest)})
    retrieval = settings.retrieval.model_copy(update={"k": max(settings.retrieval.k, k)})
    return settings.model_copy(update={"window": window, "retrieval": retrieval, "domain": dataset.domain})


def build_models(names: Sequence[str], dataset: Dataset, settings: Settings,
                 encoder: TextEncoder | None, warm_epochs: int = 5) -> list[StreamingModel]:
    """Fresh models, in the order given. Pipelines need ``encoder`` (in text mode, pass one CachedEncoder
    for all of them). An unknown name, or a pipeline without an encoder, is a
    :class:`~streamrec.errors.ConfigError`."""
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
    weights = ActionVocabulary.for_domain(settings.domain, settings.actions).weights
    models: list[StreamingModel] = []
    for name in names:
        if name in BASELINES:
            model = BASELINES[name](dataset.catalogue, weights)
            model.name = name
            models.append(model)
            continue
        if encoder is None:
            raise ConfigError(f"model {name!r} needs an encoder")
        head = settings.head.model_copy(update={**PIPELINES, **WARM}[name])
        variant, variant_encoder = pipeline_encoder(settings.model_copy(update={"head": head}), encoder)
        pipeline = Pipeline(variant, variant_encoder, Catalog(dataset.items))
        models.append(WarmPipelineModel(pipeline, name, warm_epochs) if name in WARM else PipelineModel(pipeline, name))
    return models


def pipeline_encoder(settings: Settings, encoder: TextEncoder) -> tuple[Settings, TextEncoder]:
    """The settings and encoder a pipeline runs with: a head without text features reads
    nothing from the encoder, so it gets zero vectors (in text mode) instead of paying for encoding."""
    if settings.head.text_features:
        return settings, encoder
    return (settings.model_copy(update={"encoder": settings.encoder.model_copy(update={"mode": "text"})}),
            ZeroEncoder(encoder.dim))


def run_suite(
    dataset: Dataset,
    settings: Settings,
    encoder: TextEncoder | None,
    model_names: Sequence[str] = MODEL_NAMES,
    protocols: Sequence[str] = PROTOCOLS,
    k: int = METRIC_K,
    progress: Progress | None = None,
    pipelines_per_event: bool = False,
    warm_epochs: int = 5,
) -> SuiteResult:
    """Run ``protocols`` over ``dataset`` for ``model_names``; see the module docstring. An unknown
    protocol or model is a :class:`~streamrec.errors.ConfigError`."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")
    settings = harness_settings(settings, dataset, k)
    # text mode re-encodes whole window texts and pooled mode item texts, which the variants
    # share through one cache; the incremental and item modes keep per-user caches in each pipeline
    cached = CachedEncoder(encoder) if encoder is not None and settings.encoder.mode in ("text", "pooled") else None
    vocab = ActionVocabulary.for_domain(settings.domain, settings.actions)
    exclude_actions = settings.retrieval.exclude_actions
    result = SuiteResult(dataset, settings)

    def positive(event: Any) -> bool:
        return vocab.is_positive(event.action)

    for protocol in protocols:
        names = [n for n in model_names  # a pipeline per event is slow: only when asked for
                 if not (protocol == "prequential-per-event" and n in PIPELINES and not pipelines_per_event)
                 and not (n in WARM and protocol != "leave-last-out")]  # only leave-last-out has a history first
        if not names:
            continue
        models = build_models(names, dataset, settings, cached or encoder, warm_epochs)
        report = functools.partial(progress, protocol) if progress is not None else None
        started = time.perf_counter()
        if protocol == "leave-last-out":
            split = split_leave_last_out(dataset.events, positive=positive)
            outcome = run_leave_last_out(split, models, settings.batch.max_size, k, dataset.catalogue,
                                         exclude_actions, on_batch=report)
        else:
            batch_size = 1 if protocol == "prequential-per-event" else settings.batch.max_size
            outcome = run_prequential(dataset.events, models, batch_size, k, dataset.catalogue, positive,
                                      exclude_actions, on_batch=report)
            outcome.protocol = protocol
        outcome.extra["batch_size"] = 1 if protocol == "prequential-per-event" else settings.batch.max_size
        result.wall_seconds[protocol] = time.perf_counter() - started
        result.protocols[protocol] = outcome
        result.diagnostics[protocol] = {m.name: m.diagnostics() for m in models if isinstance(m, PipelineModel)}
    if cached is not None:
        result.encoder_cache = {"hits": cached.hits, "misses": cached.misses}
    return result


def prequential_pass(dataset: Dataset, settings: Settings, models: Sequence[StreamingModel]) -> ProtocolResult:
    """One prequential pass of ``models`` over ``dataset`` in micro-batches of ``batch.max_size``,
    with a progress bar: what the benchmarks that build their own models run."""
    vocab = ActionVocabulary.for_domain(settings.domain, settings.actions)
    with tqdm(total=len(dataset.events), desc="prequential", unit="ev", file=sys.stderr) as bar:
        return run_prequential(dataset.events, models, settings.batch.max_size, catalogue=dataset.catalogue,
                               positive=lambda e: vocab.is_positive(e.action),
                               exclude_actions=settings.retrieval.exclude_actions,
                               on_batch=lambda done, total: bar.update(done - bar.n))
