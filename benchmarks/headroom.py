"""How much room the prequential protocol leaves above the co-occurrence kNN, on one dataset.

    python benchmarks/headroom.py ../shared/datasets/ml-100k
    python benchmarks/headroom.py ../shared/datasets/ml-100k --alpha 0.8 --tag asym

Runs the 30-item co-occurrence kNN (streamrec's own co-occurrence setting; with ``--alpha
0.8``, the harness's ``cooccurrence-knn-30-asym``, the strongest baseline of the quality run
on ml-100k) twice in the harness: as the streaming baseline, and
in *hindsight*, with its co-occurrence counts taken from the whole log before the stream
starts (so it has already seen the very pairs it is scored on; only the users' recent items
still stream). The hindsight model is not a fair competitor: it is an upper reference for
what any item-item signal could reach under the same protocol, micro-batched
(``--batch-size``, default 64) and per event. A third copy drops the scored user's own pairs
and counts from the hindsight co-occurrence, so it reads every other user's whole behaviour
but not the user's own later events: the tighter reference where few users share each item.

Writes benchmarks/results/headroom-<dataset>[-<tag>].json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from streamrec.config import HeadSettings
from streamrec.evaluation import load_dataset
from streamrec.evaluation.baselines import CooccurrenceKNN
from streamrec.evaluation.protocols import run_prequential
from streamrec.evaluation.report import machine_info
from streamrec.events import ActionVocabulary, Event

RESULTS = Path(__file__).resolve().parent / "results"
_HEAD = HeadSettings()  # streamrec's co-occurrence defaults, the setting this measures
HISTORY, DECAY = _HEAD.cooccurrence_history, _HEAD.cooccurrence_decay
ONLINE = f"cooccurrence-knn-{HISTORY}"
HINDSIGHT = f"{ONLINE}-hindsight"


class HindsightKNN(CooccurrenceKNN):
    """The kNN with co-occurrence and counts fitted on the whole log up front; it only tracks
    each user's recent items as the stream goes."""

    name = HINDSIGHT

    def __init__(self, log: Sequence[Event], catalogue: Sequence[str], weights: Mapping[str, float],
                 alpha: float = _HEAD.cooccurrence_alpha) -> None:
        super().__init__(catalogue, weights, history=HISTORY, decay=DECAY, alpha=alpha)
        super().learn(log)
        self.recent = {}

    def learn(self, events: Sequence[Event]) -> None:
        for event in events:
            index = self.index_of(event.item_id)
            if self.weight(event) > 0:
                self.remember(event.user_id, index)


class OthersHindsightKNN(HindsightKNN):
    """The hindsight kNN without the scored user's own pairs and counts: what every *other*
    user's whole behaviour says. The user's own later events are exactly what is being
    predicted, so the plain hindsight kNN partly reads the answer off them."""

    name = f"{HINDSIGHT}-others"

    def __init__(self, log: Sequence[Event], catalogue: Sequence[str], weights: Mapping[str, float],
                 alpha: float = _HEAD.cooccurrence_alpha) -> None:
        super().__init__(log, catalogue, weights, alpha)
        own: dict[str, tuple[list[int], list[int], list[int]]] = {}  # items taken; pair rows, columns
        for event in log:  # each user's own share of the counts, by the rule the fit used
            if self.weight(event) <= 0:
                continue
            index = self.index_of(event.item_id)
            taken, rows, columns = own.setdefault(event.user_id, ([], [], []))
            others = self.partners(event.user_id, index)
            taken.append(index)
            rows += others + [index] * len(others)
            columns += [index] * len(others) + others
            self.remember(event.user_id, index)
        self.recent = {}
        self.own = {user: tuple(np.array(part, dtype=np.int64) for part in parts) for user, parts in own.items()}

    def evidence(self, user_id: str, recent: list[int], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cooccurrence, counts = super().evidence(user_id, recent, counts)
        if user_id not in self.own:
            return cooccurrence, counts
        taken, pair_rows, pair_columns = self.own[user_id]
        position = np.full(len(counts), -1)
        position[recent] = np.arange(len(recent))
        mine = position[pair_rows] >= 0
        cooccurrence = cooccurrence.copy()
        np.add.at(cooccurrence, (position[pair_rows[mine]], pair_columns[mine]), -1.0)
        return cooccurrence, np.maximum(counts - np.bincount(taken, minlength=len(counts)), 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a log path read by streamrec.sources, or 'synthetic[:...]'")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, help="only the first N valid events")
    parser.add_argument("--alpha", type=float, default=_HEAD.cooccurrence_alpha,
                        help="similarity c(i,j) / (n(i)^alpha n(j)^(1-alpha)); default streamrec's (0.5: cosine)")
    parser.add_argument("--tag", default="", help="report name suffix: headroom-<dataset>-<tag>.md")
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args(argv)

    dataset = load_dataset(args.dataset, args.limit)
    vocab = ActionVocabulary.for_domain(dataset.domain)
    weights = vocab.weights
    rows = []
    for label, batch_size in (("micro-batched", args.batch_size), ("per event", 1)):
        online = CooccurrenceKNN(dataset.catalogue, weights, history=HISTORY, decay=DECAY, alpha=args.alpha)
        online.name = ONLINE
        hindsight = HindsightKNN(dataset.events, dataset.catalogue, weights, alpha=args.alpha)
        others = OthersHindsightKNN(dataset.events, dataset.catalogue, weights, alpha=args.alpha)
        with tqdm(total=len(dataset.events), desc=f"prequential {label}", unit="ev", file=sys.stderr) as bar:
            result = run_prequential(dataset.events, [online, hindsight, others], batch_size,
                                     catalogue=dataset.catalogue,
                                     positive=lambda e: vocab.is_positive(e.action),
                                     on_batch=lambda done, total: bar.update(done - bar.n))
        metrics = result.metrics()
        rows.append({"protocol": label, "batch_size": batch_size, "scored_events": result.scored,
                     **{name: {key: metrics[name]["all"][key] for key in ("hit@10", "ndcg@10")}
                        for name in metrics}})
    report = {"dataset": dataset.describe(), "machine": machine_info(), "history": HISTORY, "decay": DECAY,
              "alpha": args.alpha, "rows": rows}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"headroom-{dataset.name}" + (f"-{args.tag}" if args.tag else ""))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    machine = report["machine"]
    similarity = "cosine" if report["alpha"] == 0.5 else f"asymmetric cosine, alpha {report['alpha']}"
    lines = [
        f"# Headroom of the prequential protocol: {report['dataset']['name']}", "",
        f"The {report['history']}-item co-occurrence kNN (decay {report['decay']}, {similarity}) streaming, "
        "against the same kNN fitted on the whole log before the stream starts (it has seen the pairs it is "
        "scored on: an upper reference, not a competitor).", "",
        f"| protocol | scored events | kNN-{report['history']} hit@10 | hindsight hit@10 | ratio | "
        f"hindsight, others only hit@10 | ratio | kNN-{report['history']} ndcg@10 | hindsight ndcg@10 | "
        "hindsight, others only ndcg@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        online, hindsight, others = row[ONLINE], row[HINDSIGHT], row[OthersHindsightKNN.name]
        lines.append(f"| {row['protocol']} (batch {row['batch_size']}) | {row['scored_events']} | "
                     f"{online['hit@10']:.4f} | {hindsight['hit@10']:.4f} | "
                     f"{hindsight['hit@10'] / max(online['hit@10'], 1e-12):.2f}x | {others['hit@10']:.4f} | "
                     f"{others['hit@10'] / max(online['hit@10'], 1e-12):.2f}x | "
                     f"{online['ndcg@10']:.4f} | {hindsight['ndcg@10']:.4f} | {others['ndcg@10']:.4f} |")
    lines += ["", "Hindsight, others only: the hindsight kNN without the scored user's own pairs and counts "
              "(what every other user's whole behaviour says; the plain hindsight kNN also reads the user's "
              "own later events, the very answer being scored).", "",
              f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
