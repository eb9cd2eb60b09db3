"""The published peer, side by side: SASRec trained offline the standard way on the same log.

    python benchmarks/sasrec.py ../shared/datasets/amazon-beauty/interactions.tsv \
        --column-map default_action=purchase timestamp_unit=s order=seq_pos
    python benchmarks/sasrec.py ... --shuffle-ties 0 --tag ties-shuffled

The protocol of the SASRec / TIGER / eSASRec tables: each user's positive items in order; the last
is the test target, the one before it the validation target, the rest training. SASRec (the
headroom study's: 2 pre-norm layers, 64 dimensions, the last 50 items, the item table shared by
input and output, a full-softmax next-item loss, which is what the strongest published SASRec
rows use) trains on every position of the training prefixes; validation ndcg@10 every
``--eval-every`` epochs picks the best epoch (early stopping after ``--patience`` evaluations
without a gain); then the best model ranks the whole catalogue for each user from their items
up to the validation item, the user's history masked. The harness's leave-last-out protocol
holds out the same targets (each user's last event), so its numbers sit beside these.

Writes benchmarks/results/sasrec-<dataset>[-<tag>].json and .md: hit@10 and ndcg@10 with 95 %
intervals (bootstrap over users), the epochs and the validation curve.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from harness import load_dataset, shuffle_ties
from harness.machine import machine_info
from headroom import SASRec
from streamrec.events import ActionVocabulary

RESULTS = Path(__file__).resolve().parent / "results"
K = 10


def sequences(events: list, positive: ActionVocabulary) -> tuple[list[str], list[list[int]], int]:
    """Users (in first-seen order), each one's positive items as catalogue rows in log order, catalogue size."""
    rows: dict[str, int] = {}
    history: dict[str, list[int]] = {}
    for event in events:
        if positive.is_positive(event.action):
            history.setdefault(event.user_id, []).append(rows.setdefault(event.item_id, len(rows)))
    users = [user for user, items in history.items() if len(items) >= 3]
    return users, [history[user] for user in users], len(rows)


def ranks(model: SASRec, inputs: list[list[int]], targets: list[int], chunk: int = 1024) -> np.ndarray:
    """0-based rank of each target among all items, the input items masked (-1: below the top K)."""
    out = np.empty(len(targets), dtype=np.int64)
    for start in range(0, len(targets), chunk):
        part = inputs[start:start + chunk]
        scores = model.next_scores(part)
        for row, items in enumerate(part):
            scores[row, items] = -np.inf
        target = np.asarray(targets[start:start + chunk])
        mine = scores[np.arange(len(part)), target][:, None]
        out[start:start + len(part)] = (scores > mine).sum(axis=1)
    return np.where(out < K, out, -1)


def metrics(found: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """hit@K and ndcg@K with 95 % percentile intervals (users resampled; one target each)."""
    hit = (found >= 0).astype(np.float64)
    ndcg = np.where(found >= 0, 1.0 / np.log2(np.maximum(found, 0) + 2.0), 0.0)
    draws = np.random.default_rng(seed).integers(0, len(found), size=(resamples, len(found)))
    out: dict[str, float] = {"users": len(found)}
    for name, values in ((f"hit@{K}", hit), (f"ndcg@{K}", ndcg)):
        means = np.array([values[draw].mean() for draw in draws])
        out[name] = float(values.mean())
        out[f"{name}_low"], out[f"{name}_high"] = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a log path read by streamrec.sources, or 'synthetic[:...]'")
    parser.add_argument("--column-map", nargs="+", default=[], metavar="FIELD=COLUMN")
    parser.add_argument("--domain", help="action vocabulary of a generic log")
    parser.add_argument("--shuffle-ties", type=int, metavar="SEED", help="shuffle each user's same-timestamp events")
    parser.add_argument("--limit", type=int, help="only the first N valid events")
    parser.add_argument("--epochs", type=int, default=200, help="at most this many epochs")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--patience", type=int, default=4, help="evaluations without a validation gain")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.5, help="0.5: the SASRec paper's for sparse logs")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    column_map = dict(pair.split("=", 1) for pair in args.column_map)
    dataset = load_dataset(args.dataset, args.limit, column_map or None, args.domain or "ecommerce")
    if args.shuffle_ties is not None:
        dataset = shuffle_ties(dataset, args.shuffle_ties)
    users, seqs, n_items = sequences(dataset.events, ActionVocabulary.for_domain(dataset.domain))
    print(f"{dataset.name}: {len(users)} users, {n_items} items", file=sys.stderr)
    torch.manual_seed(args.seed)
    model = SASRec(n_items, dim=args.dim, dropout=args.dropout)
    valid_in, valid_target = [seq[:-2] for seq in seqs], [seq[-2] for seq in seqs]
    curve: list[dict[str, float]] = []
    best: dict[str, object] = {"ndcg": -1.0, "epoch": 0, "state": None}
    started = time.perf_counter()
    bar = tqdm(total=args.epochs, desc="SASRec", unit="epoch", file=sys.stderr)

    def after_epoch(epoch: int, loss: float) -> bool:
        bar.update(1)
        if epoch % args.eval_every and epoch != args.epochs:
            return False
        found = ranks(model, valid_in, valid_target)
        ndcg = float(np.where(found >= 0, 1.0 / np.log2(np.maximum(found, 0) + 2.0), 0.0).mean())
        curve.append({"epoch": epoch, "loss": loss, "valid_hit@10": float((found >= 0).mean()), "valid_ndcg@10": ndcg})
        tqdm.write(f"epoch {epoch}: loss {loss:.3f}, validation hit@10 {curve[-1]['valid_hit@10']:.4f} "
                   f"ndcg@10 {ndcg:.4f}", file=sys.stderr)
        if ndcg > float(best["ndcg"]):  # type: ignore[arg-type]
            best.update(ndcg=ndcg, epoch=epoch, state=copy.deepcopy(model.state_dict()))
        return epoch - int(best["epoch"]) >= args.patience * args.eval_every  # type: ignore[call-overload]

    model.fit([seq[:-2] for seq in seqs], args.epochs, seed=args.seed, after_epoch=after_epoch)
    bar.close()
    model.load_state_dict(best["state"])  # type: ignore[arg-type]
    test = metrics(ranks(model, [seq[:-1] for seq in seqs], [seq[-1] for seq in seqs]))
    report = {"dataset": dataset.describe(), "machine": machine_info(), "model": "sasrec",
              "settings": {"dim": args.dim, "layers": 2, "heads": 2, "length": model.length, "dropout": args.dropout,
                           "loss": "full softmax", "optimiser": "Adam, lr 1e-3, batch 128", "seed": args.seed},
              "shuffle_ties": args.shuffle_ties, "best_epoch": best["epoch"], "curve": curve,
              "train_seconds": time.perf_counter() - started, "test": test,
              "command": "sasrec.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"sasrec-{dataset.name}" + (f"-{args.tag}" if args.tag else ""))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    test, machine = report["test"], report["machine"]
    seed = report["shuffle_ties"]
    ties = f"same-day ties shuffled (seed {seed})" if seed is not None else "the log's own order"
    return "\n".join([
        f"# SASRec, offline, leave-one-out: {report['dataset']['name']}", "",
        f"Order within a timestamp: {ties}. {test['users']} users; last item test, second-to-last validation "
        f"(early stopping; best epoch {report['best_epoch']}), full catalogue ranked, history masked.", "",
        "| model | hit@10 | 95 % interval | ndcg@10 | 95 % interval |", "|---|---:|---|---:|---|",
        f"| SASRec | {test['hit@10']:.4f} | {test['hit@10_low']:.4f} to {test['hit@10_high']:.4f} | "
        f"{test['ndcg@10']:.4f} | {test['ndcg@10_low']:.4f} to {test['ndcg@10_high']:.4f} |", "",
        f"Settings: {', '.join(f'{k} {v}' for k, v in report['settings'].items())}. "
        f"Training took {report['train_seconds']:.0f} s.", "",
        f"Command: `{report['command']}`.", "",
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores.", ""])


if __name__ == "__main__":
    sys.exit(main())
