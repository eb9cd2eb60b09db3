"""A batch of users scored by every signal: over the whole catalogue, or over their candidates.

``full`` (small catalogues): each signal's rows span every item, as the ranker has always seen
them. ``candidates`` (large ones): :mod:`streamrec.candidates` picks a few hundred items per user
and every signal scores those only, so the cost of a batch no longer grows with the catalogue.
Both give :class:`Rows`: the ranker's feature rows and, for candidates, which item each column
is. The pipeline uses the same rows to recommend (``ranker.combine``) and, before a batch is
learned, to score each positive event test-then-train (``ranker.observe``). In candidates mode
the ranker learns only from events whose item was among the user's candidates (``Rows.found``):
it learns to order what it will be shown at serving. A missed item is counted in the stage's
recall and as a miss of the ranker, but never added to the candidates: when the one item from
outside them is always the answer, the ranker learns what "outside" looks like (rarely taken,
unrelated by co-occurrence) and recommends exactly that (on amazon-beauty, where the sources
miss four targets in five, hit@10 fell from 0.039 to 0.004).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from streamrec.candidates import CandidateGenerator
from streamrec.head import OnlineHead
from streamrec.signals import Scores, Signal, score_rows

log = logging.getLogger(__name__)


@dataclass
class Rows:
    features: list[torch.Tensor]  # one per ranker feature: (users, columns), or (1, columns) shared
    columns: torch.Tensor | None = None  # (users, columns) item indices, -1 for padding; None: column = item
    targets: torch.Tensor | None = None  # (users,) the column of each user's target, when asked for
    found: torch.Tensor | None = None  # candidates: (users,) whether the target is among them
    item_vectors: torch.Tensor | None = None  # the head's item vectors: (items, dim), or those of ``distinct``
    distinct: torch.Tensor | None = None  # candidates: the distinct items among them, sorted

    def padding(self) -> torch.Tensor | None:
        return None if self.columns is None else self.columns < 0

    def vectors_of(self, items: torch.Tensor) -> torch.Tensor | None:
        """The head's vectors of ``items`` as these rows computed them (None: not all of them)."""
        if self.item_vectors is None or self.distinct is None:
            return None if self.item_vectors is None else self.item_vectors[items]
        if not len(self.distinct):
            return None
        at = torch.searchsorted(self.distinct, items).clamp(max=len(self.distinct) - 1)
        return self.item_vectors[at] if bool((self.distinct[at] == items).all()) else None


def text_query(recent: torch.Tensor, item_text: torch.Tensor, decay: float) -> torch.Tensor:
    """Each user's recent positive items' unit text vectors, recency-weighted and summed
    ``(users, dim)``: the text signal's query (an item's text score is its cosine with it, times
    the query's length)."""
    weights = (recent >= 0).float() * decay ** torch.arange(recent.shape[1], dtype=torch.float)
    unit = torch.nn.functional.normalize(item_text[recent.clamp(min=0)], dim=-1)
    return (weights.unsqueeze(-1) * unit).sum(dim=1)


class Scorer:
    """Rows for a batch of users, in the pipeline's retrieval mode."""

    def __init__(self, head: OnlineHead, signals: Sequence[Signal], candidates: CandidateGenerator | None,
                 text_decay: float, prepare: Callable[[torch.Tensor], None] | None = None) -> None:
        self.head = head
        self.signals = signals
        self.candidates = candidates
        self.text_decay = text_decay
        self.prepare = prepare  # called with the candidates before they are scored (encode their text)
        self._warned_size = False

    @property
    def mode(self) -> str:
        return "full" if self.candidates is None else "candidates"

    def check_size(self, n_items: int, mode: str, full_max_items: int) -> bool:
        """Warn once when ``retrieval.mode: auto`` ranks whole a catalogue that has outgrown
        ``full_max_items`` since the start (auto decides on the catalogue at start: ``streamrec
        run`` without ``--catalog`` starts empty). True when it warned now."""
        if self.candidates is not None or mode != "auto" or n_items <= full_max_items or self._warned_size:
            return False
        self._warned_size = True
        log.warning("the catalogue has grown to %d items, more than retrieval.full_max_items=%d, and is still "
                    "ranked whole (retrieval.mode: auto decides at start, when it had fewer): give the service "
                    "--catalog, or set retrieval.mode: candidates", n_items, full_max_items)
        return True

    def rows(self, user_vectors: torch.Tensor, positive_recent: torch.Tensor, item_text: torch.Tensor,
             excluded: Sequence[set[int]], blocked: torch.Tensor,
             targets: torch.Tensor | None = None) -> Rows:
        """``user_vectors``: the head's ``(users, dim)``; ``item_text``: ``(items, enc_dim)``
        (rows of items not yet encoded are zero); ``excluded``: each user's items never to rank."""
        if self.candidates is None:
            item_vecs, bias = self.head.item_vectors(item_text)
            head = user_vectors @ item_vecs.T + bias
            features = score_rows(self.signals, Scores(head, positive_recent, item_text))
            return Rows(features, targets=targets, item_vectors=item_vecs)
        query = text_query(positive_recent, item_text, self.text_decay)
        columns = self.candidates.generate(positive_recent, query, item_text.shape[0], excluded, blocked)
        if self.prepare is not None:
            self.prepare(columns)
        target_columns = found = None
        if targets is not None:
            found = self.candidates.observe_targets(columns, targets)
            target_columns = (columns == targets.unsqueeze(1)).long().argmax(dim=1)  # 0 where not found
        self.head.ensure_capacity(item_text.shape[0])
        # each distinct candidate once (users share the popular, trending and new ones, and many
        # neighbours): the head's item tower and the unit text vectors, scored against every user
        # and gathered to the columns (cheaper than gathering a vector per column)
        distinct, spread = torch.unique(columns.clamp(min=0), return_inverse=True)
        with torch.no_grad():  # the ranker learns from these rows; the head learns on its own
            vectors, bias = self.head.model.items(item_text[distinct], distinct)
        head = torch.gather(user_vectors @ vectors.T + bias, 1, spread)
        unit_text = torch.nn.functional.normalize(item_text[distinct], dim=-1)
        scores = Scores(head, positive_recent, item_text, candidates=columns, text_query=query,
                        distinct_text=unit_text, spread=spread)
        return Rows(score_rows(self.signals, scores), columns, target_columns, found=found, item_vectors=vectors,
                    distinct=distinct)
