"""How much room the prequential protocol leaves above the co-occurrence kNN, on one dataset.

    python benchmarks/headroom.py ../shared/datasets/ml-100k
    python benchmarks/headroom.py ../shared/datasets/ml-100k --alpha 0.8 --tag asym
    python benchmarks/headroom.py ../shared/datasets/ml-100k --sasrec-epochs 40
    python benchmarks/headroom.py ml-1m --limit 300000 --sasrec-epochs 20 --no-per-event --tag sasrec-300k
    python benchmarks/headroom.py ../shared/datasets/amazon-beauty/interactions.tsv --no-per-event \
        --column-map default_action=purchase timestamp_unit=s order=seq_pos --domain ecommerce

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

With ``--sasrec-epochs N`` a fourth reference asks the same of a sequence model: a SASRec
(causal self-attention over each user's last 50 items, full-softmax next-item loss) per fold
of users (``--folds``, default 5), trained for N epochs on the whole sequences of the users in
the other folds, future included, and scoring its fold's users from their items so far.

Writes benchmarks/results/headroom-<dataset>[-<tag>].json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from harness import load_dataset
from harness.baselines import CooccurrenceKNN
from harness.machine import machine_info
from harness.models import ScoringModel
from harness.protocols import run_prequential
from streamrec.config import HeadSettings
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
        self.reset()

    def reset(self) -> None:
        """Forget the users' recent items (the fitted counts stay): ready for another pass."""
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
        self.shares: dict[str, tuple[list[int], list[int], list[int]]] = {}  # items taken; pair rows, columns
        super().__init__(log, catalogue, weights, alpha)  # the fit records each user's share in partners()
        self.own = {user: tuple(np.array(part, dtype=np.int64) for part in parts)
                    for user, parts in self.shares.items()}
        self.shares.clear()  # only the fit calls partners()

    def partners(self, user_id: str, index: int) -> list[int]:
        others = super().partners(user_id, index)
        taken, rows, columns = self.shares.setdefault(user_id, ([], [], []))
        taken.append(index)
        rows += others + [index] * len(others)
        columns += [index] * len(others) + others
        return others

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


class SASRec(nn.Module):
    """Self-attentive sequential recommendation (Kang & McAuley 2018), pre-norm, with the item
    table shared by input and output and a full-softmax next-item loss."""

    def __init__(self, n_items: int, dim: int = 64, layers: int = 2, heads: int = 2, length: int = 50,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.length, self.heads, self.dim = length, heads, dim
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)  # row 0: padding; item i is row i + 1
        self.position = nn.Embedding(length, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.item.weight, std=0.05)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` item rows, left-padded with 0, ``L <= length`` -> ``(B, L, dim)`` states."""
        batch, length = seq.shape
        # positions count from the right, so a batch cut to its longest sequence reads as the full length would
        x = self.item(seq) * math.sqrt(self.dim) + self.position(torch.arange(self.length - length, self.length))
        x = self.drop(x) * (seq > 0).unsqueeze(-1)
        blocked = torch.triu(torch.ones(length, length, dtype=torch.bool), 1) | (seq == 0).unsqueeze(1)
        # an additive mask, finite so that padded positions (nothing to attend to) stay finite
        mask = torch.zeros(batch, length, length).masked_fill(blocked, -1e9)
        return self.norm(self.encoder(x, mask=mask.repeat_interleave(self.heads, dim=0)))

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.item.weight[1:].T

    def fit(self, sequences: Sequence[list[int]], epochs: int, batch: int = 128, seed: int = 0,
            after_epoch: Callable[[int, float], bool] | None = None) -> float:
        """Adam over every position of every sequence, cut into windows of ``length``; the last loss.

        ``after_epoch(epoch, loss)`` is called after each epoch (1-based); training stops when it returns True.
        """
        inputs, targets = [], []
        for seq in sequences:
            for end in range(len(seq), 1, -self.length):
                part = seq[max(0, end - self.length - 1):end]
                pad = self.length - len(part) + 1
                inputs.append([0] * pad + [i + 1 for i in part[:-1]])
                targets.append([-100] * pad + part[1:])
        x_all, y_all = torch.tensor(inputs), torch.tensor(targets)
        lengths = (x_all > 0).sum(dim=1)
        optimiser = torch.optim.Adam(self.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(seed)
        loss = torch.zeros(())
        for epoch in range(1, epochs + 1):
            self.train()
            for rows in _batches(lengths, batch, generator):
                cut = int(lengths[rows].max())  # the batch's longest window: the padding before it is skipped
                x, y = x_all[rows, -cut:], y_all[rows, -cut:]
                keep = y >= 0
                loss = nn.functional.cross_entropy(self.logits(self(x)[keep]), y[keep])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            self.eval()
            if after_epoch is not None and after_epoch(epoch, float(loss.detach())):
                break
        self.eval()
        return float(loss.detach())

    @torch.no_grad()
    def next_scores(self, histories: Sequence[list[int]]) -> np.ndarray:
        """``(len(histories), n_items)`` next-item scores from each history's last ``length`` items."""
        width = max(1, min(self.length, max((len(items) for items in histories), default=1)))
        seq = torch.zeros(len(histories), width, dtype=torch.long)
        for row, items in enumerate(histories):
            items = items[-width:]
            if items:
                seq[row, width - len(items):] = torch.tensor(items) + 1
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # its fused kernel turns padded rows into NaN
        try:
            return self.logits(self(seq)[:, -1]).numpy()
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)


def _batches(lengths: torch.Tensor, batch: int, generator: torch.Generator, pool: int = 50) -> list[torch.Tensor]:
    """Random batches of rows of about equal length: rows shuffled, sorted by length within pools of ``pool``
    batches, cut into batches, the batches shuffled (short windows then skip most of the padding)."""
    order = torch.randperm(len(lengths), generator=generator)
    out: list[torch.Tensor] = []
    for part in order.split(batch * pool):
        part = part[torch.argsort(lengths[part], stable=True)]
        out.extend(part.split(batch))
    return [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]


class OthersHindsightSASRec(ScoringModel):
    """SASRec in hindsight, others only: users split into ``folds``; each fold's users are
    scored by a model trained on the whole sequences of every other fold's users."""

    name = "sasrec-hindsight-others"

    def __init__(self, log: Sequence[Event], catalogue: Sequence[str], weights: Mapping[str, float], epochs: int,
                 folds: int = 5) -> None:
        self.history: dict[str, list[int]] = {}  # user -> positive items so far, in order
        super().__init__(catalogue, weights)
        self.learn(log)
        self.size = self.n_items  # the items the models know
        users = sorted(self.history)
        self.fold = dict(zip(users, np.random.default_rng(0).integers(0, folds, len(users)).tolist(), strict=True))
        self.models = []
        for fold in tqdm(range(folds), desc="SASRec folds", file=sys.stderr):
            torch.manual_seed(fold)
            model = SASRec(self.size)
            loss = model.fit([seq for user, seq in self.history.items() if self.fold[user] != fold], epochs, seed=fold)
            tqdm.write(f"fold {fold}: training loss {loss:.3f}", file=sys.stderr)
            self.models.append(model)
        self.reset()

    def reset(self) -> None:
        """Forget the users' items so far (the trained models stay): ready for another pass."""
        self.history = {}

    def learn(self, events: Sequence[Event]) -> None:
        for event in events:
            index = self.index_of(event.item_id)
            if self.weight(event) > 0:
                self.history.setdefault(event.user_id, []).append(index)

    def scores(self, user_ids: Sequence[str]) -> np.ndarray:
        out = np.full((len(user_ids), self.n_items), -np.inf)
        for fold, model in enumerate(self.models):
            rows = [row for row, user in enumerate(user_ids) if self.fold.get(user, 0) == fold]
            if rows:
                histories = [[i for i in self.history.get(user_ids[row], []) if i < self.size] for row in rows]
                out[rows, : self.size] = model.next_scores(histories)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a log path read by streamrec.sources, or 'synthetic[:...]'")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, help="only the first N valid events")
    parser.add_argument("--column-map", nargs="+", default=[], metavar="FIELD=COLUMN",
                        help="generic logs: field (or option) = column, e.g. default_action=purchase order=seq_pos")
    parser.add_argument("--domain", help="action vocabulary of a generic log (MovieLens and Amazon fix theirs)")
    parser.add_argument("--per-event", action=argparse.BooleanOptionalAction, default=True,
                        help="also score per event (batches of one; slow on large logs)")
    parser.add_argument("--alpha", type=float, default=_HEAD.cooccurrence_alpha,
                        help="similarity c(i,j) / (n(i)^alpha n(j)^(1-alpha)); default streamrec's (0.5: cosine)")
    parser.add_argument("--sasrec-epochs", type=int, default=0,
                        help="also the SASRec reference, trained this many epochs per fold (0: not run)")
    parser.add_argument("--folds", type=int, default=5, help="user folds of the SASRec reference")
    parser.add_argument("--tag", default="", help="report name suffix: headroom-<dataset>-<tag>.md")
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args(argv)

    column_map = dict(pair.split("=", 1) for pair in args.column_map)
    dataset = load_dataset(args.dataset, args.limit, column_map or None, args.domain)
    vocab = ActionVocabulary.for_domain(dataset.domain)
    weights = vocab.weights
    # the references are fitted once; each protocol starts them afresh with reset()
    references: list[HindsightKNN | OthersHindsightSASRec] = [
        HindsightKNN(dataset.events, dataset.catalogue, weights, alpha=args.alpha),
        OthersHindsightKNN(dataset.events, dataset.catalogue, weights, alpha=args.alpha)]
    if args.sasrec_epochs:
        references.append(OthersHindsightSASRec(dataset.events, dataset.catalogue, weights, args.sasrec_epochs,
                                                args.folds))
    rows = []
    protocols = [("micro-batched", args.batch_size)] + ([("per event", 1)] if args.per_event else [])
    for label, batch_size in protocols:
        online = CooccurrenceKNN(dataset.catalogue, weights, history=HISTORY, decay=DECAY, alpha=args.alpha)
        online.name = ONLINE
        for reference in references:
            reference.reset()
        with tqdm(total=len(dataset.events), desc=f"prequential {label}", unit="ev", file=sys.stderr) as bar:
            result = run_prequential(dataset.events, [online, *references], batch_size,
                                     catalogue=dataset.catalogue,
                                     positive=lambda e: vocab.is_positive(e.action),
                                     on_batch=lambda done, total: bar.update(done - bar.n))
        metrics = result.metrics()
        rows.append({"protocol": label, "batch_size": batch_size, "scored_events": result.scored,
                     **{name: {key: metrics[name]["all"][key] for key in ("hit@10", "ndcg@10")}
                        for name in metrics}})
    report = {"dataset": dataset.describe(), "machine": machine_info(), "history": HISTORY, "decay": DECAY,
              "alpha": args.alpha, "sasrec_epochs": args.sasrec_epochs, "folds": args.folds,
              "command": "headroom.py " + " ".join(argv if argv is not None else sys.argv[1:]), "rows": rows}
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
    sasrec = OthersHindsightSASRec.name in report["rows"][0]
    header = (f"| protocol | scored events | kNN-{report['history']} hit@10 | hindsight hit@10 | ratio | "
              "hindsight, others only hit@10 | ratio |")
    header += " SASRec, others only hit@10 | ratio |" if sasrec else ""
    header += f" kNN-{report['history']} ndcg@10 | hindsight ndcg@10 | hindsight, others only ndcg@10 |"
    header += " SASRec, others only ndcg@10 |" if sasrec else ""
    lines = [
        f"# Headroom of the prequential protocol: {report['dataset']['name']}", "",
        f"The {report['history']}-item co-occurrence kNN (decay {report['decay']}, {similarity}) streaming, "
        "against the same kNN fitted on the whole log before the stream starts (it has seen the pairs it is "
        "scored on: an upper reference, not a competitor).", "",
        header, "|---|" + "---:|" * (header.count("|") - 2),
    ]
    for row in report["rows"]:
        online = row[ONLINE]
        references = [row[HINDSIGHT], row[OthersHindsightKNN.name]]
        references += [row[OthersHindsightSASRec.name]] if sasrec else []
        cells = [f"{row['protocol']} (batch {row['batch_size']})", str(row["scored_events"]), f"{online['hit@10']:.4f}"]
        cells += [f"{ref['hit@10']:.4f} | {ref['hit@10'] / max(online['hit@10'], 1e-12):.2f}x" for ref in references]
        cells += [f"{model['ndcg@10']:.4f}" for model in (online, *references)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Hindsight, others only: the hindsight kNN without the scored user's own pairs and counts "
              "(what every other user's whole behaviour says; the plain hindsight kNN also reads the user's "
              "own later events, the very answer being scored)."]
    if sasrec:
        lines += ["", f"SASRec, others only: users split into {report['folds']} folds; each fold's users scored by "
                  "a SASRec (2 layers, 64 dimensions, the last 50 items, full-softmax next-item loss) trained "
                  f"for {report['sasrec_epochs']} epochs on the whole sequences of the other folds' users."]
    if "command" in report:
        lines += ["", f"Command: `{report['command']}`."]
    lines += ["", f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
