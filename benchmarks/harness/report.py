"""The benchmark's output: one JSON document, a markdown table and a hit@10 curve (PNG).

The markdown puts every protocol, model and slice in one table, then checks the quality
targets (:class:`Targets`; :data:`DEFAULT_TARGETS` unless :func:`build_report` is given others)
against the best baseline of the same run, each comparison with a 95% confidence interval from
a bootstrap over users (:func:`~harness.quality.paired_bootstrap`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from harness.machine import load_average, machine_info
from harness.protocols import ProtocolResult
from harness.quality import SLICES, paired_bootstrap, per_event, rolling_hit_rate
from harness.suite import BASELINES, SuiteResult

SLICE_TITLES = {"cold_item": "cold items", "new_user": "new users", "long_tail": "long tail",
                "unseen_item": "unseen items"}
CURVE_POINTS = 200


class RatioTarget(NamedTuple):
    """streamrec's ``metric`` on the events of ``scope`` (``"all"`` or a slice) must reach ``ratio``
    times the best baseline's."""

    metric: str
    scope: str
    ratio: float


@dataclass(frozen=True)
class Targets:
    """What the report checks streamrec against, in the prequential pass of the same run."""

    #: Quality targets: 1.2x the best baseline's hit@10 and ndcg@10, 1.5x its hit@10 on cold items.
    ratios: tuple[RatioTarget, ...] = (RatioTarget("hit@10", "all", 1.2), RatioTarget("ndcg@10", "all", 1.2),
                                       RatioTarget("hit@10", "cold_item", 1.5))
    #: Replay target: ``replay_events`` events (ml-100k's 100,000) within ``replay_seconds`` (30 minutes,
    #: on 2 CPU cores); a longer log gets as long per event.
    replay_seconds: float = 1800.0
    replay_events: int = 100_000


DEFAULT_TARGETS = Targets()


def curve(result: ProtocolResult, points: int = CURVE_POINTS) -> dict[str, Any]:
    """Rolling hit@k per model over the stream; the window is 1/25 of the scored events (>= 100)."""
    window = max(100, result.scored // 25)
    models = {}
    for name, ranks in result.ranks.items():
        ends, rates = rolling_hit_rate(ranks, result.k, window, points)
        models[name] = {"position": result.positions[ends - 1].tolist() if len(ends) else [],
                        f"hit@{result.k}": [round(float(r), 5) for r in rates]}
    return {"window_scored_events": window, "models": models}


def build_report(suite: SuiteResult, encoder: dict[str, Any], command: list[str] | None = None,
                 machine: dict[str, Any] | None = None, targets: Targets = DEFAULT_TARGETS) -> dict[str, Any]:
    """The run as one JSON-ready document: dataset, encoder, settings, machine, every protocol's
    metrics and curves, and ``targets`` checked against the best baseline (:func:`check_targets`)."""
    protocols = {}
    for name, result in suite.protocols.items():
        protocols[name] = {
            "batch_size": result.extra.get("batch_size"), "k": result.k, "events": result.events,
            "scored_events": result.scored, "users": result.users, "items": result.n_items,
            "slice_events": {s: int(mask.sum()) for s, mask in result.slices.items()},
            "wall_seconds": suite.wall_seconds.get(name),
            "models": _rounded(result.metrics()),
            "pipelines": suite.diagnostics.get(name, {}),
        }
        protocols[name]["comparisons"] = comparisons(result)
        if name.startswith("prequential"):
            protocols[name]["curve"] = curve(result)
    report = {
        "dataset": suite.dataset.describe(),
        "encoder": encoder,
        "settings": {"batch_size": suite.settings.batch.max_size, "k": suite.settings.retrieval.k,
                     "head": suite.settings.head.model_dump(mode="json"),
                     "window": suite.settings.window.model_dump(mode="json"),
                     "encoder": suite.settings.encoder.model_dump(mode="json")},
        "machine": machine or machine_info(),
        "command": command,
        "encoder_cache": suite.encoder_cache,
        "protocols": protocols,
    }
    report["targets"] = check_targets(report, suite.protocols.get("prequential"), targets)
    return report


def check_targets(report: dict[str, Any], result: ProtocolResult | None = None,
                  targets: Targets = DEFAULT_TARGETS) -> dict[str, Any]:
    """``targets``, measured against the best baseline of the same run, plus whether the text beats
    the ids-only head; with the prequential ``result`` (its ranks), each comparison gets a bootstrap
    interval (``ci``)."""
    pre = report["protocols"].get("prequential")
    if pre is None or "streamrec" not in pre["models"]:
        return {}
    models = pre["models"]
    baselines = {n: m for n, m in models.items() if n in BASELINES}
    out: dict[str, Any] = {}
    if baselines:
        for metric, scope, needed in targets.ratios:
            best = max(baselines, key=lambda n: baselines[n][scope][metric])
            ours, theirs = models["streamrec"][scope][metric], baselines[best][scope][metric]
            ratio = ours / theirs if theirs > 0 else None
            out[f"{scope} {metric}"] = {"streamrec": ours, "best_baseline": best, "baseline": theirs,
                                       "ratio": ratio, "target_ratio": needed,
                                       "met": ratio is not None and ratio >= needed,
                                       **interval(result, "streamrec", best, metric, scope)}
    if "streamrec-ids-only" in models:
        ours, ids = models["streamrec"]["all"]["hit@10"], models["streamrec-ids-only"]["all"]["hit@10"]
        text_gain = interval(result, "streamrec", "streamrec-ids-only", "hit@10", "all")
        # "improves" means more than noise: with an interval, its lower end must be above zero
        met = ours > ids and (not text_gain or text_gain["ci"]["difference_low"] > 0)
        out["text beats ids-only"] = {"streamrec": ours, "ids_only": ids, "met": met, **text_gain}
    seconds = models["streamrec"]["seconds"]
    budget = targets.replay_seconds * max(1.0, pre["events"] / targets.replay_events)
    minutes = f"{targets.replay_seconds / 60:g} min"
    note = "wall time of the streamrec model in the prequential pass"
    if budget > targets.replay_seconds:
        note += f"; {pre['events']:,} events: budget {budget:,.0f} s, {minutes} per {targets.replay_events:,} events"
    out[f"replay within {minutes}"] = {"seconds": seconds, "cpu_seconds": models["streamrec"]["cpu_seconds"],
                                   "budget_seconds": budget, "met": seconds <= budget, "note": note}
    return out


#: Each pipeline against the best baseline on these (metric, scope); pairs of pipelines on hit@10 and ndcg@10.
COMPARED = (("hit@10", "all"), ("ndcg@10", "all"), ("hit@10", "cold_item"))
PIPELINE_PAIRS = (("streamrec", "streamrec-ids-only"), ("streamrec-warm", "streamrec"),
                  ("streamrec-warm", "streamrec-ids-only-warm"))


def comparisons(result: ProtocolResult) -> list[dict[str, Any]]:
    """Paired comparisons with bootstrap intervals over users, in any protocol: each pipeline against the
    best baseline of the run (on ``COMPARED``), and the pipelines of ``PIPELINE_PAIRS`` against each other."""
    metrics = result.metrics()
    baselines = [n for n in metrics if n in BASELINES]
    pairs: list[tuple[str, str, str, str]] = []
    for name in (n for n in metrics if n not in BASELINES):
        for metric, scope in COMPARED if baselines else ():
            pairs.append((name, max(baselines, key=lambda n: metrics[n][scope][metric]), metric, scope))
    for ours, theirs in PIPELINE_PAIRS:
        if ours in metrics and theirs in metrics:
            pairs += [(ours, theirs, "hit@10", "all"), (ours, theirs, "ndcg@10", "all")]
    return [{"model": ours, "against": theirs, "metric": metric, "scope": scope,
             "ours": metrics[ours][scope][metric], "theirs": metrics[theirs][scope][metric],
             **interval(result, ours, theirs, metric, scope)} for ours, theirs, metric, scope in pairs]


def command_line(argv: list[str] | None = None) -> list[str]:
    """The command that reproduces a benchmark run: its ``STREAMREC_*`` overrides, the script, its arguments."""
    overridden = [f"{name}={value}" for name, value in sorted(os.environ.items()) if name.startswith("STREAMREC_")]
    return [*overridden, Path(sys.argv[0]).name, *(argv or sys.argv[1:])]


def interval(result: ProtocolResult | None, ours: str, theirs: str, metric: str, scope: str) -> dict[str, Any]:
    """``{"ci": paired_bootstrap(...)}`` of ``ours`` against ``theirs`` on ``scope``'s events."""
    if result is None or ours not in result.ranks or theirs not in result.ranks:
        return {}
    mask = np.ones(result.scored, dtype=bool) if scope == "all" else result.slices[scope]
    kind = metric.split("@")[0]
    ci = paired_bootstrap(per_event(result.ranks[ours][mask], result.k, kind),
                          per_event(result.ranks[theirs][mask], result.k, kind), result.groups[mask])
    return {"ci": _rounded({k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in ci.items()})}


def write_report(report: dict[str, Any], suite: SuiteResult, out_dir: str | Path, tag: str = "") -> dict[str, Path]:
    """Write ``quality-<dataset>[-<tag>].json``, ``.md`` and ``.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"quality-{suite.dataset.name}" + (f"-{tag}" if tag else "")
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    if not plot_curves(report, paths["png"]):
        del paths["png"]
    paths["json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown(report, paths.get("png")), encoding="utf-8")
    return paths


def plot_curves(report: dict[str, Any], path: Path) -> bool:
    """hit@10 over the stream for every model, one panel per prequential protocol."""
    panels = [(n, p) for n, p in report["protocols"].items() if p.get("curve")]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 4 * len(panels)), squeeze=False)
    for ax, (name, protocol) in zip(axes[:, 0], panels, strict=True):
        for model, line in protocol["curve"]["models"].items():
            ax.plot(line["position"], line["hit@10"], label=model,
                    linewidth=2.0 if model.startswith("streamrec") else 1.2,
                    linestyle="-" if model.startswith("streamrec") else "--")
        ax.set_title(f"{report['dataset']['name']}: {name} hit@10, batches of {protocol['batch_size']}, "
                     f"rolling over {protocol['curve']['window_scored_events']} scored events")
        ax.set_xlabel("position in the time-ordered log (events)")
        ax.set_ylabel("hit@10")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _encoder_mode(report: dict[str, Any]) -> str:
    settings = report.get("settings", {}).get("encoder")
    if not settings or not report["encoder"].get("model"):
        return ""
    if settings["mode"] == "pooled":
        return (f"; mode `pooled` (a window is its items' vectors averaged, pool_decay {settings['pool_decay']}), "
                f"at most {settings['max_length']} tokens per item text")
    return f"; mode `{settings['mode']}`, at most {settings['max_length']} tokens per window"


def markdown(report: dict[str, Any], png: Path | None = None) -> str:
    data, machine, encoder = report["dataset"], report["machine"], report["encoder"]
    lines = [
        f"# Recommendation quality: {data['name']}",
        "",
        f"- dataset: `{data['location']}` ({data['source']}), {data['events']} events, {data['users']} users, "
        f"{data['items_with_text']} items with text, {data['rejected_records']} rejected records",
        f"- encoder: {encoder.get('description')} (`{encoder.get('model')}`){_encoder_mode(report)}",
        f"- machine: {machine['cpu']}, {machine['cores']} cores, torch threads {machine['torch_threads']}, "
        f"GPU {machine['gpu'] or 'none'}; {machine['date']}; load average (1/5/15 min) at start "
        f"{load_average(machine)}, at end {load_average(machine, end=True) or 'n/a'}",
        f"- command: `{' '.join(report['command'] or [])}`",
        "",
        "Metrics are @10 over the full catalogue, seen items excluded. Slices: cold items have fewer than "
        "5 interactions so far, new users fewer than 5 events so far, long-tail items are outside the top "
        "20% of items by interactions so far, unseen items have none (only a model that reads item text can "
        "rank them; \"so far\": learned before the event's batch; for leave-last-out, in training). "
        "Seconds: the model's own learn + recommend time, wall clock and process CPU (all threads; less "
        "sensitive to other load on a shared machine).",
        "",
        "| protocol | model | hit | ndcg | mrr | coverage | " + " | ".join(
            f"{SLICE_TITLES[s]} hit / ndcg" for s in SLICES) + " | wall / CPU s |",
        "|---|---|---|---|---|---|" + "---|" * len(SLICES) + "---|",
    ]
    for name, protocol in report["protocols"].items():
        label = f"{name} (batch {protocol['batch_size']})"
        for model, m in protocol["models"].items():
            cells = [f"{m['all']['hit@10']:.4f}", f"{m['all']['ndcg@10']:.4f}", f"{m['all']['mrr@10']:.4f}",
                     f"{m['coverage@10']:.3f}"]
            cells += [f"{m[s]['hit@10']:.4f} / {m[s]['ndcg@10']:.4f}" for s in SLICES]
            cells.append(f"{m['seconds']:.0f} / {m['cpu_seconds']:.0f}")
            lines.append(f"| {label} | {model} | " + " | ".join(cells) + " |")
    lines += ["", "Scored events per protocol and slice:", ""]
    for name, protocol in report["protocols"].items():
        sizes = ", ".join(f"{SLICE_TITLES[s]} {n}" for s, n in protocol["slice_events"].items())
        lines.append(f"- {name}: {protocol['scored_events']} scored of {protocol['events']} events "
                     f"({sizes}); {protocol['items']} items; wall {protocol['wall_seconds']:.0f} s")
    if report.get("targets"):
        lines += ["", "## Targets, prequential, against the best baseline of this run", ""]
        for name, target in report["targets"].items():
            mark = "met" if target["met"] else "not met"
            ci = target.get("ci")
            if "ratio" in target:
                ratio = "n/a" if target["ratio"] is None else f"{target['ratio']:.2f}x"
                interval = (f"; {ci['confidence']:.0%} CI {ci['ratio_low']:.2f}x to {ci['ratio_high']:.2f}x"
                            if ci and ci["ratio_low"] is not None else "")
                lines.append(f"- {name}: streamrec {target['streamrec']:.4f} vs {target['best_baseline']} "
                             f"{target['baseline']:.4f} = {ratio}{interval} (target {target['target_ratio']}x): "
                             f"{mark}")
            elif "ids_only" in target:
                interval = (f" (difference {ci['difference']:+.4f}, {ci['confidence']:.0%} CI "
                            f"{ci['difference_low']:+.4f} to {ci['difference_high']:+.4f})" if ci else "")
                lines.append(f"- {name}: {target['streamrec']:.4f} vs {target['ids_only']:.4f}{interval}: {mark}")
            else:
                lines.append(f"- {name}: {target['seconds']:.0f} s, {target['cpu_seconds']:.0f} CPU s "
                             f"({target['note']}): {mark}")
        intervals = [t["ci"] for t in report["targets"].values() if t.get("ci")]
        if intervals:
            lines += ["", f"Intervals: a bootstrap over users ({intervals[0]['resamples']:,} Poisson resamples, "
                      "each user's scored events drawn together). They say how much a comparison depends on "
                      "which users the log happens to hold, not how much it moves with the models' own "
                      "randomness (seeds)."]
    compared = [(p, c) for p, protocol in report["protocols"].items() for c in protocol.get("comparisons", [])]
    if compared:
        lines += ["", "## Paired comparisons (95 % bootstrap intervals over users)", "",
                  "| protocol | model | against | metric | ours | theirs | ratio (CI) | difference (CI) |",
                  "|---|---|---|---|---|---|---|---|"]
        for protocol_name, c in compared:
            ci = c.get("ci") or {}
            ratio = "n/a" if not ci.get("ratio") else f"{ci['ratio']:.2f}x" + (
                f" ({ci['ratio_low']:.2f}-{ci['ratio_high']:.2f})" if ci.get("ratio_low") is not None else "")
            difference = (f"{ci['difference']:+.4f} ({ci['difference_low']:+.4f} to {ci['difference_high']:+.4f})"
                          if ci else f"{c['ours'] - c['theirs']:+.4f}")
            scope = "" if c["scope"] == "all" else f" ({SLICE_TITLES[c['scope']]})"
            lines.append(f"| {protocol_name} | {c['model']} | {c['against']} | {c['metric']}{scope} | "
                         f"{c['ours']:.4f} | {c['theirs']:.4f} | {ratio} | {difference} |")
    pipelines = {(p, n): d for p, protocol in report["protocols"].items() for n, d in protocol["pipelines"].items()}
    if pipelines:
        lines += ["", "## Pipeline time by stage (seconds)", "",
                  "| protocol | model | encode | train | rank | exclusion mismatches |", "|---|---|---|---|---|---|"]
        for (protocol_name, model), d in pipelines.items():
            s = d["seconds"]
            lines.append(f"| {protocol_name} | {model} | {s['encode']:.0f} | {s['train']:.0f} | {s['rank']:.0f} | "
                         f"{d['exclusion_mismatches']} |")
        for (protocol_name, model), d in pipelines.items():
            w = d.get("window_encoder")
            if w and w["forwards"]:
                resets = ", ".join(f"{n} {reason}" for reason, n in sorted(w["resets"].items(), key=lambda r: -r[1]))
                lines += ["", f"{protocol_name}, {model}: the window encoder ran {w['forwards']} forwards over "
                          f"{w['appended_positions'] + w['reset_positions']} positions, "
                          f"{w['appended_positions']} for new events and {w['reset_positions']} re-encoding views "
                          f"(resets: {resets or 'none'}); {w['evictions']} KV caches evicted, peak "
                          f"{w['peak_cache_bytes'] / 2**20:.0f} MiB."]
        cache = report.get("encoder_cache") or {}
        if cache:
            lines += ["", "Window and item texts are encoded once per run and shared between pipelines and protocols "
                      f"(cache hits {cache.get('hits', 0)}, texts encoded {cache.get('misses', 0)}); the first "
                      "pipeline to meet a text pays for it."]
        else:
            lines += ["", "Nothing is shared between pipelines: in `incremental` and `item` mode each keeps its own "
                      "per-user encoder caches, so each pays for its own encoding."]
        if any(model == "streamrec-ids-only" for _, model in pipelines):
            lines.append("The ids-only head gets zero vectors instead of encodings (it reads none; the test suite "
                         "checks it ranks identically), so its time includes no encoding.")
    if png is not None:
        lines += ["", f"![hit@10 over the stream]({png.name})"]
    return "\n".join(lines) + "\n"


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float | np.floating):
        return round(float(value), 6)
    return value
