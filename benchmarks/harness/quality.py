"""Rank-based quality metrics over scored events, overall and per slice.

Every scored event gets the 0-based rank of its item in the list the model had published
(``-1`` when the item was not in the top ``k``). From the ranks:

* ``hit@k``  = share of events whose item was in the list;
* ``ndcg@k`` = mean of ``1 / log2(rank + 2)`` (one relevant item per event);
* ``mrr@k``  = mean of ``1 / (rank + 1)``;
* ``coverage@k`` = distinct items ever recommended / catalogue size (a property of the lists,
  not of the events, so it is computed by whoever saw the lists).

Slices are boolean masks over the same scored events, so every model is scored on exactly
the same events in every slice.

How sure is a comparison? :func:`paired_bootstrap` resamples *users* (all of a user's scored
events together, since one user's events are not independent) and gives confidence intervals
for the ratio and the difference of two models' means on the same events. It measures how
much the verdict depends on which users happened to be in the log, not the models' training
randomness (seeds measure that).

>>> ranks = np.array([0, 1, -1, 9])
>>> summary = rank_metrics(ranks, k=10)
>>> summary["hit@10"], round(summary["ndcg@10"], 4), round(summary["mrr@10"], 4)
(0.75, 0.48, 0.4)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Slice thresholds: items with fewer interactions so far are cold; users with
#: fewer events so far are new; items outside this top share by popularity are long-tail.
#: Unseen items, the coldest of the cold, have no interaction so far: only a model that reads
#: item text (or other content) can rank them above the rest.
COLD_ITEM_INTERACTIONS = 5
NEW_USER_EVENTS = 5
HEAD_SHARE = 0.2

SLICES = ("cold_item", "new_user", "long_tail", "unseen_item")


def _gains(ranks: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Each event's hit (0/1), ndcg and mrr gain at ``k``."""
    hit = (ranks >= 0) & (ranks < k)
    safe = np.where(hit, ranks, 0).astype(np.float64)
    return {"hit": hit.astype(np.float64), "ndcg": np.where(hit, 1.0 / np.log2(safe + 2.0), 0.0),
            "mrr": np.where(hit, 1.0 / (safe + 1.0), 0.0)}


def rank_metrics(ranks: np.ndarray, k: int) -> dict[str, float]:
    """hit/ndcg/mrr at ``k`` of an array of 0-based ranks (``-1``: not in the top ``k``)."""
    ranks = np.asarray(ranks)
    return {f"{metric}@{k}": float(gain.mean()) if len(ranks) else 0.0
            for metric, gain in _gains(ranks, k).items()}


def per_event(ranks: np.ndarray, k: int, metric: str = "hit") -> np.ndarray:
    """Each scored event's contribution to ``hit@k`` (0/1) or ``ndcg@k`` (its gain)."""
    if metric not in ("hit", "ndcg"):
        raise ValueError(f"metric must be 'hit' or 'ndcg', got {metric!r}")
    return _gains(np.asarray(ranks), k)[metric]


def sliced_metrics(ranks: np.ndarray, slices: Mapping[str, np.ndarray], k: int) -> dict[str, dict[str, float]]:
    """``rank_metrics`` for all events (``"all"``) and for each slice mask, with event counts."""
    out = {"all": {**rank_metrics(ranks, k), "events": len(ranks)}}
    for name, mask in slices.items():
        out[name] = {**rank_metrics(ranks[mask], k), "events": int(mask.sum())}
    return out


def paired_bootstrap(ours: np.ndarray, theirs: np.ndarray, groups: np.ndarray, resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0, chunk: int = 100) -> dict[str, float]:
    """Confidence intervals for ``mean(ours) / mean(theirs)`` and ``mean(ours) - mean(theirs)``.

    ``ours`` and ``theirs`` are per-event values of two models on the same scored events
    (:func:`per_event`); ``groups`` the user of each (any integer ids). Each resample draws
    every user a Poisson(1) number of times with all their events (the Poisson bootstrap:
    streams of any size, no fixed resample size), so users with many events carry their
    weight and their events' correlation. Percentile intervals; the ``ratio`` bounds are
    ``nan`` when ``theirs`` has no mass in some resample (the ratio is then unbounded).

    >>> ours, theirs = np.array([1., 1, 0, 1]), np.array([1., 0, 0, 0])
    >>> ci = paired_bootstrap(ours, theirs, groups=np.array([0, 1, 2, 3]))
    >>> ci["ratio"], ci["difference"], ci["difference_low"] > -0.1
    (3.0, 0.5, True)
    """
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if not len(ours) == len(theirs) == len(groups):
        raise ValueError(f"need one value per event from both models and one group each, got "
                         f"{len(ours)}, {len(theirs)}, {len(groups)}")
    _, group = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(group.max()) + 1 if len(group) else 0
    sums = np.stack([np.bincount(group, weights=v, minlength=n_groups) for v in (ours, theirs)])
    counts = np.bincount(group, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    ratios, differences = [], []
    for start in range(0, resamples, chunk):
        draws = rng.poisson(1.0, size=(min(chunk, resamples - start), n_groups)).astype(np.float64)
        means = draws @ sums.T / np.maximum(draws @ counts, 1.0)[:, None]  # (draws, 2)
        differences.append(means[:, 0] - means[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(means[:, 0] / means[:, 1])  # inf or nan where theirs has no mass
    tail = [100.0 * (1.0 - confidence) / 2.0, 100.0 * (1.0 + confidence) / 2.0]
    difference, ratio = np.concatenate(differences), np.concatenate(ratios)
    mean_ours, mean_theirs = sums.sum(axis=1) / max(len(ours), 1)
    ratio_low, ratio_high = np.percentile(ratio, tail) if np.isfinite(ratio).all() else (np.nan, np.nan)
    difference_low, difference_high = np.percentile(difference, tail)
    return {"ratio": float(mean_ours / mean_theirs) if mean_theirs > 0 else float("nan"),
            "ratio_low": float(ratio_low), "ratio_high": float(ratio_high),
            "difference": float(mean_ours - mean_theirs),
            "difference_low": float(difference_low), "difference_high": float(difference_high),
            "confidence": confidence, "resamples": resamples, "groups": n_groups}


def rolling_hit_rate(ranks: np.ndarray, k: int, window: int, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """hit@k over a moving window of ``window`` scored events, sampled at about ``points`` places.

    Returns ``(end, rate)``: the index (into the scored events) where each window ends, and
    its hit rate. Empty when there are fewer events than one window.

    >>> end, rate = rolling_hit_rate(np.array([0, -1, 0, 0]), k=10, window=2, points=10)
    >>> end.tolist(), rate.tolist()
    ([2, 3, 4], [0.5, 0.5, 1.0])
    """
    hits = ((ranks >= 0) & (ranks < k)).astype(np.float64)
    if window < 1 or len(hits) < window:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    cumulative = np.concatenate([[0.0], np.cumsum(hits)])
    ends = np.unique(np.linspace(window, len(hits), num=min(points, len(hits) - window + 1)).astype(np.int64))
    return ends, (cumulative[ends] - cumulative[ends - window]) / window


def head_threshold(counts: np.ndarray, share: float = HEAD_SHARE) -> float:
    """The interaction count an item needs to be in the popular head: the top ``share`` of the
    items interacted with so far, ties at the boundary included. ``inf`` when none is.

    >>> head_threshold(np.array([0, 9, 1, 1, 5, 3, 2, 2, 1, 1, 1]))  # 10 items seen: top 2
    5.0
    """
    seen = counts[counts > 0]
    if len(seen) == 0:
        return float("inf")
    top = max(1, int(np.ceil(share * len(seen))))
    return float(np.partition(seen, len(seen) - top)[len(seen) - top])
