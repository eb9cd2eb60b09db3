"""What each user was last shown, kept so the ranker learns from it when they act next.

In candidates mode, the ranker learns test-then-train from each positive event: the feature
rows of the user's candidates as they were before the event, and which candidate the user
took. Those rows are exactly what the user's last recommendation was ranked on, since their
window has not changed since then: :class:`ServedRows` keeps them (the candidates and the
ranker's feature rows, in float16) instead of scoring every user twice per batch, the way
ranking systems log features at serving time and join them with the outcome. The scores are
those the user was served with; the signals have learned from the batches in between since,
which the rows do not reflect (the ranker learns to order what it showed).

An entry is taken (removed) by the user's first event in a batch, whatever the event: any
later event of theirs in the batch sees a window the rows do not describe, and is scored
afresh, as is a user whose entry was evicted (the store holds at most
``retrieval.served_users`` users, least recently served first out) or who was never served.
Entries live in memory only: after a restart, or for users a rebalance brings, the first events
are scored afresh.

>>> served = ServedRows(max_users=1)
>>> served.keep(["u1", "u2"], torch.tensor([[4, 5, -1], [6, 7, 8]]), [torch.ones(2, 3), torch.zeros(1, 3)])
>>> served.take("u1") is None, served.take("u2").columns.tolist(), len(served)
(True, [6, 7, 8], 0)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

_HALF_MAX = 65_000.0  # float16's range, with room


@dataclass
class Served:
    columns: torch.Tensor  # (candidates,) item indices, -1 for padding
    features: torch.Tensor  # (features, candidates) float16: the ranker's rows for this user


class ServedRows:
    def __init__(self, max_users: int) -> None:
        self.max_users = max_users
        self._entries: OrderedDict[str, Served] = OrderedDict()
        self.taken = 0  # positive events learned from what was served
        self.scored = 0  # ... and scored afresh (no entry: never served, evicted, or a second event)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, user: object) -> bool:
        return user in self._entries

    def memory_bytes(self) -> int:
        return sum(e.columns.nbytes + e.features.nbytes for e in self._entries.values())

    def keep(self, users: Sequence[str], columns: torch.Tensor, features: Sequence[torch.Tensor]) -> None:
        """``columns``: ``(users, candidates)``; ``features``: one ``(users, candidates)`` (or
        shared ``(1, candidates)``) row per ranker feature, as :class:`~streamrec.scoring.Rows`."""
        if self.max_users == 0 or not users:
            return
        stacked = torch.stack([f.expand(len(users), -1) for f in features], dim=1)  # (users, features, cands)
        half = stacked.clamp(-_HALF_MAX, _HALF_MAX).to(torch.float16)
        narrow = columns.to(torch.int32)
        for row, user in enumerate(users):  # cloned: a view would keep the whole batch alive
            self._entries[user] = Served(narrow[row].clone(), half[row].clone())
            self._entries.move_to_end(user)
        while len(self._entries) > self.max_users:
            self._entries.popitem(last=False)

    def take(self, user: str) -> Served | None:
        """The user's entry, removed: what their last recommendation was ranked on."""
        return self._entries.pop(user, None)

    def forget(self, users: Iterable[str]) -> None:
        for user in users:
            self._entries.pop(user, None)


@dataclass
class Learned:
    """Rows the ranker learns a group of positive events from, one row per event."""

    features: list[torch.Tensor]  # one (events, candidates) row per feature, or (1, candidates) shared
    targets: torch.Tensor  # (events,) the column of each event's item (0 where not found)
    found: torch.Tensor  # (events,) whether the item was among the candidates
    columns: torch.Tensor  # (events, candidates) item indices, -1 for padding


def from_served(entries: Sequence[Served], items: torch.Tensor) -> Learned:
    """The rows of positive events (of items ``items``) whose users were last served ``entries``."""
    features = torch.stack([e.features for e in entries]).float()  # (events, features, candidates)
    columns = torch.stack([e.columns for e in entries]).long()
    match = columns == items.unsqueeze(1)
    return Learned(list(features.unbind(dim=1)), match.long().argmax(dim=1), match.any(dim=1), columns)


def joined(groups: Sequence[Learned]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, int]:
    """The ranker's ``observe`` arguments for several groups: the found events' feature rows,
    target columns and padding, and how many events were missed."""
    found = torch.cat([g.found for g in groups])
    features = [torch.cat([g.features[f].expand(len(g.found), -1) for g in groups])[found]
                for f in range(len(groups[0].features))]
    targets = torch.cat([g.targets for g in groups])[found]
    return features, targets, torch.cat([g.columns for g in groups])[found] < 0, int((~found).sum())
