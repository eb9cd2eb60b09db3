"""Scale: what a batch costs as the catalogue grows, ranked whole or on candidates.

    python benchmarks/scale.py                                   # 10k, 100k, 1M items; about 15 min
    python benchmarks/scale.py --items 10000 50000 --modes full candidates --events 5000

Each catalogue size and retrieval mode runs in a process of its own (so its peak memory is its
own): a synthetic shop of N items (titles, categories, brands), a log of ``--events`` events by
``--users`` users drawn Zipf-popular with a planted next item (80 %), replayed through the
embedded pipeline with the tiny GPT-2 (``--encoder`` for another) in ``pooled`` mode, defaults
otherwise. Reported per run: events/s, seconds per event in each stage, time to the first
recommendation, peak resident memory and what the indexes hold, hit@10, and in candidates mode
the candidate stage's recall. Writes benchmarks/results/scale.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness.machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
PLANTED = 0.8  # share of events that take the item's planted successor


def make_log(n_items: int, n_users: int, n_events: int, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """Items and a time-ordered log: each user walks the planted successor (item i -> i + 6, the
    same category) with probability 0.8, else jumps to a Zipf-popular item."""
    from streamrec.events import Event
    from streamrec.synthetic import make_catalog

    items = make_catalog(n_items, random.Random(seed))
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.3, size=n_events), n_items) - 1  # popular items: low indices
    popular = rng.permutation(n_items)[ranks]
    follow = rng.random(n_events) < PLANTED
    users = rng.integers(0, n_users, size=n_events)
    actions = rng.choice(["view", "click", "cart", "purchase"], p=[0.7, 0.15, 0.1, 0.05], size=n_events)
    last: dict[int, int] = {}
    events = []
    for n in range(n_events):
        user = int(users[n])
        item = (last[user] + 6) % n_items if follow[n] and user in last else int(popular[n])
        last[user] = item
        events.append(Event(f"u{user}", str(item), str(actions[n]), 1_700_000_000_000 + 1000 * n, event_id=f"e{n}"))
    return items, events


def run_one(n_items: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from streamrec.catalog import Catalog
    from streamrec.config import load_settings
    from streamrec.encoding import HFEncoder
    from streamrec.pipeline import Pipeline
    from streamrec.replay import replay
    from streamrec.sparse_cooccurrence import SparseCooccurrence

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    items, events = make_log(n_items, args.users, args.events)
    generated = time.perf_counter() - started
    settings = load_settings(encoder={"model": args.model, "mode": args.encoder_mode},
                             retrieval={"mode": mode}, batch={"max_size": args.batch_size})
    started = time.perf_counter()
    pipeline = Pipeline(settings, HFEncoder(settings.encoder), Catalog(items))
    first: list[float] = []

    def on_batch(result: Any) -> None:
        if result.recommendations and not first:
            first.append(time.perf_counter() - started)

    metrics = replay(pipeline, events, progress=False, on_batch=on_batch)
    cooccurrence = pipeline.cooccurrence
    index_bytes = (cooccurrence.memory_bytes() if isinstance(cooccurrence, SparseCooccurrence)
                   else cooccurrence.matrix.nbytes + cooccurrence.counts.nbytes if cooccurrence is not None else 0)
    generator = pipeline.scorer.candidates
    return {
        "items": n_items, "mode": pipeline.scorer.mode, "events": len(events), "users": args.users,
        "hit@10": metrics["hit@10"], "ndcg@10": metrics["ndcg@10"], "events_per_second": metrics["events_per_second"],
        "ms_per_event": {stage: 1000 * s / len(events) for stage, s in metrics["seconds"].items()},
        "first_recommendation_seconds": first[0] if first else None, "generate_seconds": generated,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cooccurrence": type(cooccurrence).__name__, "cooccurrence_mb": index_bytes / 1e6,
        "item_vectors_encoded": pipeline.item_vectors.encoded,
        "text_index_mb": pipeline.text_index.memory_bytes() / 1e6 if pipeline.text_index is not None else 0.0,
        "candidate_recall": generator.stats.recall if generator is not None else None,
        "candidates_by_source": dict(generator.stats.contributed) if generator is not None else None,
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Scale: cost per event as the catalogue grows", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {report['args']['threads']}; {m['date']}. "
        f"Encoder: {report['args']['encoder']} in `{report['args']['encoder_mode']}` mode; "
        f"{report['args']['events']} events by {report['args']['users']} users, micro-batches of "
        f"{report['args']['batch_size']}; the log plants each item's successor (80 % of events).", "",
        "| items | mode | events/s | encode ms/ev | train ms/ev | rank ms/ev | first rec (s) | peak RSS (MB) "
        "| co-occurrence | items encoded | hit@10 | candidate recall |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"| {r['items']:,} | {r['mode']} | failed: {r['error']} |||||||||")
            continue
        ms = r["ms_per_event"]
        recall = f"{r['candidate_recall']:.3f}" if r["candidate_recall"] is not None else "-"
        lines.append(
            f"| {r['items']:,} | {r['mode']} | {r['events_per_second']:.0f} | {ms['encode']:.2f} | {ms['train']:.2f} "
            f"| {ms['rank']:.2f} | {r['first_recommendation_seconds']:.1f} | {r['peak_rss_mb']:.0f} "
            f"| {r['cooccurrence']} {r['cooccurrence_mb']:.0f} MB | {r['item_vectors_encoded']:,} "
            f"| {r['hit@10']:.3f} | {recall} |")
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in ("full", "candidates"):
        runs = [r for r in report["runs"] if r.get("mode") == mode and "error" not in r]
        if not runs:
            continue
        speed.plot([r["items"] for r in runs], [r["events_per_second"] for r in runs], "o-", label=mode)
        memory.plot([r["items"] for r in runs], [r["peak_rss_mb"] for r in runs], "o-", label=mode)
    for axis, title in ((speed, "events per second"), (memory, "peak resident memory (MB)")):
        axis.set_ylim(bottom=0)
        axis.set_xscale("log")
        axis.set_xlabel("catalogue size (items)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--modes", nargs="+", default=["auto"], choices=["auto", "full", "candidates"])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--encoder", default="tiny", help="tiny (a tiny GPT-2 built here) or a model path")
    parser.add_argument("--encoder-mode", default="pooled", choices=["pooled", "text", "incremental", "item"])
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--one", nargs=2, metavar=("ITEMS", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(int(args.one[0]), args.one[1], args)))
        return
    model = args.encoder
    if model == "tiny":
        from streamrec.synthetic import make_catalog
        from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

        model = str(build_tiny_gpt2(tokenizer_corpus(make_catalog(600, random.Random(0))),
                                    Path(tempfile.mkdtemp(prefix="scale-")) / "tiny-gpt2"))
    runs = []
    for n_items in args.items:
        for mode in args.modes:
            print(f"{n_items:,} items, mode {mode} ...", flush=True)
            command = [sys.executable, __file__, "--one", str(n_items), mode, "--model", model,
                       *[f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                         if k in ("events", "users", "batch_size", "threads", "encoder_mode")]]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                runs.append({"items": n_items, "mode": mode, "error": done.stderr.strip().splitlines()[-1][:200]})
            else:
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {runs[-1]}", flush=True)
    report = {"machine": machine_info(), "args": {k: str(v) if isinstance(v, Path) else v
                                                  for k, v in vars(args).items() if k not in ("one", "model")},
              "command": " ".join(["python", "benchmarks/scale.py", *(argv or sys.argv[1:])]), "runs": runs}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / "scale.md").write_text(markdown(report))
    plot(report, args.out_dir / "scale.png")
    print(markdown(report))


if __name__ == "__main__":
    main()
