"""The final ranker: a learned blend of score rows (the head, co-occurrence, popularity, text).

Every signal scores the whole catalogue for a user; each row is standardised (zero mean, unit
deviation over the items), and the final score is ``sum_f w_f * z_f``; a signal that is the
same for every user (popularity, an item's stage) may come as one ``(1, items)`` row, which is
standardised once and broadcast. The weights ``w`` are learned on the stream, test-then-train
like everything else: before a batch is learned, each of its positive events is ranked with
the signals as they were before the event (its hit@k is recorded, decayed, for monitoring),
then ``w`` takes one Adam step on the softmax loss of the event's item over the catalogue
(items the user had already seen left out). A log where item text predicts well moves weight
towards the head and text; one driven by co-visitation, towards the co-occurrence.

>>> ranker = OnlineRanker(["head", "cooccurrence"], learning_rate=0.2)
>>> head, cooc = torch.tensor([[1.0, 0.0, 0.5]]), torch.tensor([[0.0, 0.0, 9.0]])
>>> for _ in range(20):
...     ranker.observe(torch.stack([head, cooc]), torch.tensor([2]), torch.zeros(1, 3, dtype=torch.bool))
>>> ranker.weight("cooccurrence") > ranker.weight("head"), ranker.combine(torch.stack([head, cooc])).argmax().item()
(True, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from streamrec.checkpoint import checked, load_tensors, save_tensors
from streamrec.errors import UsageError

INITIAL = {"head": 1.0, "cooccurrence": 1.0}
FORMAT = "streamrec-ranker-1"


class OnlineRanker:
    def __init__(self, features: Sequence[str], k: int = 10, learning_rate: float = 0.05,
                 initial: Mapping[str, float] = INITIAL, half_life: float = 2000.0) -> None:
        self.features = list(features)
        self.k = k
        self.weights = torch.nn.Parameter(torch.tensor([float(initial.get(f, 0.0)) for f in self.features]))
        self.optimizer = torch.optim.Adam([self.weights], lr=learning_rate)
        self.decay = 0.5 ** (1.0 / half_life)  # per observed event, for the monitored hit rate
        self.hits = 0.0  # decayed hits@k of the scored events, and their decayed count
        self.scored = 0.0
        self.observed = 0

    def weight(self, feature: str) -> float:
        return self.weights_by_feature()[feature]

    def weights_by_feature(self) -> dict[str, float]:
        return dict(zip(self.features, self.weights.detach().tolist(), strict=True))

    @property
    def hit_rate(self) -> float:
        """Decayed hit@k of the events scored so far, before each was learned."""
        return self.hits / self.scored if self.scored else float("nan")

    def combine(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``features``: one row of raw scores per feature, each ``(users, items)`` or, the same
        for every user, ``(1, items)`` (a ``(features, users, items)`` tensor does too) ->
        ``(users, items)``."""
        with torch.no_grad():
            return self._scores(features)

    def _scores(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(features) != len(self.features):
            raise UsageError(f"{len(features)} score rows for {len(self.features)} ranker features")
        terms = (weight * standardised(row) for weight, row in zip(self.weights, features, strict=True))
        return sum(terms, torch.zeros(()))  # shared rows broadcast over the users

    def observe(self, features: Sequence[torch.Tensor], targets: torch.Tensor, excluded: torch.Tensor,
                missed: int = 0) -> None:
        """Score ``targets`` (one per row) with the current weights, then learn from them.
        ``excluded`` (bool, users x items) marks items the users had already seen; ``missed``
        counts further events whose item was not among the scored columns at all (candidates
        mode): misses in the hit rate, nothing to learn from."""
        if missed:
            self.hits *= self.decay ** missed
            self.scored = self.scored * self.decay ** missed + sum(self.decay ** n for n in range(missed))
        if len(targets) == 0:
            return
        rows = torch.arange(len(targets))
        excluded = excluded.clone()
        excluded[rows, targets] = False
        logits = self._scores(features).masked_fill(excluded, float("-inf"))
        with torch.no_grad():
            target = logits[rows, targets].unsqueeze(1)
            hits = ((logits > target).sum(dim=1) < self.k).float()
            decay = self.decay ** torch.arange(len(targets) - 1, -1, -1, dtype=torch.float)
            self.hits = self.hits * self.decay ** len(targets) + float(hits @ decay)
            self.scored = self.scored * self.decay ** len(targets) + float(decay.sum())
        loss = torch.nn.functional.cross_entropy(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.observed += len(targets)

    def state(self) -> dict[str, torch.Tensor]:
        moments = self.optimizer.state.get(self.weights, {})
        return {"ranker.weights": self.weights.detach().clone(),
                **{f"ranker.adam.{k}": torch.as_tensor(v).clone() for k, v in moments.items()},
                "ranker.counters": torch.tensor([self.hits, self.scored, float(self.observed)], dtype=torch.float64)}

    def save(self, path: str | Path, item_ids: Sequence[str] = ()) -> None:
        """A safetensors checkpoint, with the features it was learned for (the weights are per
        feature, so ``item_ids`` is not needed: the parameter keeps the checkpoint protocol)."""
        save_tensors(path, self.state(), FORMAT, {"features": ",".join(self.features)})

    @checked("ranker checkpoint")
    def load(self, path: str | Path, index_of: Callable[[str], int] | None = None) -> None:
        tensors, metadata = load_tensors(path, FORMAT, "ranker checkpoint")
        self.restore(tensors, metadata["features"].split(","))

    def restore(self, state: Mapping[str, torch.Tensor], features: Sequence[str]) -> None:
        """Load :meth:`state`, saved by a ranker of ``features``; with other features, start over."""
        if list(features) != self.features or "ranker.weights" not in state:
            return
        with torch.no_grad():
            self.weights.copy_(state["ranker.weights"])
        moments = {k[len("ranker.adam."):]: v for k, v in state.items() if k.startswith("ranker.adam.")}
        if moments:
            self.optimizer.state[self.weights] = moments
        hits, scored, observed = state["ranker.counters"].tolist()
        self.hits, self.scored, self.observed = hits, scored, int(observed)


def boost_cold(scores: torch.Tensor, cold: torch.Tensor, boost: float) -> torch.Tensor:
    """New-item exposure: raise each ``cold`` item (bool, ``(items,)``) whose score is above the
    user's mean by ``boost`` times its standardised score; other items keep theirs.

    >>> boost_cold(torch.tensor([[3.0, 2.0, 1.0, 0.0]]), torch.tensor([False, True, True, False]), 1.0)
    tensor([[3.0000, 2.4472, 1.0000, 0.0000]])
    """
    return scores + boost * cold * standardised(scores).clamp(min=0)


def standardised(scores: torch.Tensor) -> torch.Tensor:
    """Each row (last axis) to zero mean and unit deviation over its finite entries."""
    if torch.isfinite(scores.sum()):  # no infinities (the usual case): one fused pass
        deviation, mean = torch.std_mean(scores, dim=-1, correction=0, keepdim=True)
        return (scores - mean) / deviation.clamp(min=1e-6)
    finite = torch.isfinite(scores)
    clean = torch.where(finite, scores, torch.zeros_like(scores))
    n = finite.sum(dim=-1, keepdim=True).clamp(min=1)
    mean = clean.sum(dim=-1, keepdim=True) / n
    var = (torch.where(finite, scores - mean, torch.zeros_like(scores)) ** 2).sum(dim=-1, keepdim=True) / n
    return torch.where(finite, (scores - mean) / var.sqrt().clamp(min=1e-6), scores)
