"""The signals the final ranker blends: each one names its score rows and computes them.

A :class:`Signal` has ``names`` (its rows, in order) and ``rows(scores)``: one ``(users, items)``
row per name, or ``(1, items)`` for a row that is the same for every user; when the batch is
scored on candidates (:mod:`streamrec.scoring`), ``(users, candidates)`` rows of those items. The ranker's
features are the signals' names in order (:func:`feature_names`), and :func:`score_rows` lays
the rows out in that order, so a row can never be matched to another signal's weight. A signal
may read rows computed before it by name (``scores.rows["cooccurrence"]``).

=======================  ====================================================================
:class:`HeadScores`      ``head``: the two-tower head's user · item scores
:class:`Cooccurrence`    ``cooccurrence``, ``cooccurrence_recent``: item co-occurrence with the
                         user's recent items, and with the last few alone (short-term intent)
:class:`Popularity`      ``popularity``: log interactions (the same for every user)
:class:`TextSimilarity`  ``text``: the LM's view: items whose text vectors are like the user's
                         recent items'
:class:`Stages`          per stage (items nobody has taken yet, cold ones): an offset
                         (``items_*``), the head's and the text's rows on those items only
                         (``head_*``, ``text_*``), and the co-occurrence of their text
                         neighbours (``neighbours_*``)
=======================  ====================================================================

Adding a signal: a class here with ``names`` and ``rows`` (for both the whole catalogue and
``scores.candidates``), and a line in :func:`build_signals`.
The stateful parts behind signals (the co-occurrence index, the text neighbours) learn and are
checkpointed by the pipeline, which owns them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from streamrec.config import HeadSettings
from streamrec.cooccurrence import ItemCooccurrence
from streamrec.errors import UsageError
from streamrec.neighbours import TextNeighbours
from streamrec.ranker import standardised
from streamrec.sparse_cooccurrence import SparseCooccurrence

Index = ItemCooccurrence | SparseCooccurrence

RECENT_ITEMS = 3  # the short-term co-occurrence signal reads the user's last 3 items
STAGES = ("new", "cold")  # items nobody has taken yet; fewer than retrieval.cold_below interactions


@dataclass
class Scores:
    """What the signals read for one batch of users, and the rows computed so far, by name."""

    head: torch.Tensor  # (users, items) or (users, candidates): the head's scores
    positive_recent: torch.Tensor  # (users, n): the users' recent positive items, newest first, -1 padded
    item_text: torch.Tensor  # (items, dim): the items' text vectors
    candidates: torch.Tensor | None = None  # (users, candidates) item indices (-1: padding); None: every item
    text_query: torch.Tensor | None = None  # (users, dim): with candidates, the text signal's query
    distinct_text: torch.Tensor | None = None  # (distinct candidates, dim): their unit text vectors ...
    spread: torch.Tensor | None = None  # (users, candidates): ... and each column's row in them
    rows: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return int(self.head.shape[1])


class Signal(Protocol):
    names: tuple[str, ...]

    def rows(self, scores: Scores) -> list[torch.Tensor]:
        """One row per name, in order."""
        ...


class HeadScores:
    names: tuple[str, ...] = ("head",)

    def rows(self, scores: Scores) -> list[torch.Tensor]:
        return [scores.head]


class Cooccurrence:
    names: tuple[str, ...] = ("cooccurrence", "cooccurrence_recent")

    def __init__(self, index: Index) -> None:
        self.index = index

    def rows(self, scores: Scores) -> list[torch.Tensor]:
        recent, candidates = scores.positive_recent, scores.candidates
        if candidates is not None:
            return [self.index.scores_for(recent, candidates),
                    self.index.scores_for(recent[:, :RECENT_ITEMS], candidates)]
        return [self.index.scores(recent, scores.n_items), self.index.scores(recent[:, :RECENT_ITEMS], scores.n_items)]


class Popularity:
    names: tuple[str, ...] = ("popularity",)

    def __init__(self, index: Index) -> None:
        self.index = index

    def rows(self, scores: Scores) -> list[torch.Tensor]:
        if scores.candidates is not None:
            return [torch.log1p(self.index.interactions_of(scores.candidates))]
        return [self.index.popularity(scores.n_items)]  # (1, items): the same for everyone


class TextSimilarity:
    """Cosine of each item's text vector with the user's recent positive items', recency-weighted."""

    names: tuple[str, ...] = ("text",)

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def rows(self, scores: Scores) -> list[torch.Tensor]:
        if scores.candidates is not None:  # each distinct candidate scored once, gathered to the columns
            if scores.text_query is None or scores.distinct_text is None or scores.spread is None:
                raise UsageError("text rows on candidates need the query and the distinct candidates' text vectors")
            return [torch.gather(scores.text_query @ scores.distinct_text.T, 1, scores.spread)]
        unit = torch.nn.functional.normalize(scores.item_text, dim=1)
        recent = scores.positive_recent
        weights = (recent >= 0).float() * self.decay ** torch.arange(recent.shape[1], dtype=torch.float)
        return [(weights.unsqueeze(-1) * unit[recent.clamp(min=0)]).sum(dim=1) @ unit.T]


class Stages:
    """Rows that let the ranker treat items nobody has taken yet (``new``) and cold ones apart."""

    def __init__(self, index: Index, cold_below: int, text: bool, neighbours: TextNeighbours | None) -> None:
        self.index = index
        self.cold_below = cold_below
        self.standardised = ["head", *(["text"] if text else [])]  # rows kept on each stage's items
        self.neighbours = neighbours
        signals = ["items", *self.standardised, *(["neighbours"] if neighbours is not None else [])]
        self.names = tuple(f"{signal}_{stage}" for signal in signals for stage in STAGES)

    def rows(self, scores: Scores) -> list[torch.Tensor]:
        if scores.candidates is not None:  # (users, candidates) stages; no text neighbours there
            interactions = self.index.interactions_of(scores.candidates)
        else:
            interactions = self.index.interactions(scores.n_items).unsqueeze(0)
        new, cold = interactions == 0, interactions < self.cold_below
        masks = [stage.float() for stage in (new, cold & ~new)]
        signals = [scores.rows[name] for name in self.standardised]
        if self.neighbours is not None and scores.candidates is None:
            self.neighbours.update(scores.item_text)
            signals.append(self.neighbours.spread(scores.rows["cooccurrence"]))
        out = list(masks)
        for row in signals:
            z = standardised(row)
            out += [z * mask for mask in masks]
        return out


def build_signals(head: HeadSettings, cooccurrence: Index | None, cold_below: int,
                  neighbours: TextNeighbours | None) -> list[Signal]:
    """The signals the settings ask for, in the ranker's feature order."""
    signals: list[Signal] = [HeadScores()]
    if cooccurrence is None:  # head.cooccurrence_history: 0: the head alone
        return signals
    signals += [Cooccurrence(cooccurrence), Popularity(cooccurrence)]
    if head.text_features:
        signals.append(TextSimilarity(head.cooccurrence_decay))
    if head.ranker_new_items:
        signals.append(Stages(cooccurrence, cold_below, head.text_features, neighbours))
    return signals


def feature_names(signals: Sequence[Signal]) -> list[str]:
    return [name for signal in signals for name in signal.names]


def score_rows(signals: Sequence[Signal], scores: Scores) -> list[torch.Tensor]:
    """Every signal's rows, in feature order; each row is also left in ``scores.rows`` by name."""
    for signal in signals:
        scores.rows.update(zip(signal.names, signal.rows(scores), strict=True))  # a row short: ValueError
    return [scores.rows[name] for signal in signals for name in signal.names]
