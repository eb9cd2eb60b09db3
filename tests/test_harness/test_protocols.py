from collections.abc import Collection, Sequence

import numpy as np
import pytest

from harness.baselines import Markov, Popularity
from harness.protocols import run_leave_last_out, run_prequential, split_leave_last_out
from streamrec.events import Event
from streamrec.synthetic import generate


def ev(user: str, item: str, t: int, action: str = "view") -> Event:
    return Event(user, item, action, t)


class Echo:
    """Recommends the user's learned items that are not excluded, in the order it learned them.

    With ``future`` (the rest of the log) it learns everything ahead of time - what a harness
    that let a model learn an event before scoring it would amount to, at the limit.
    """

    def __init__(self, name: str, future: Sequence[Event] = ()) -> None:
        self.name = name
        self.learned: dict[str, list[str]] = {}
        self._absorb(future)

    def _absorb(self, events: Sequence[Event]) -> None:
        for event in events:
            self.learned.setdefault(event.user_id, []).append(event.item_id)

    def learn(self, events: Sequence[Event]) -> None:
        if not any(self.learned.values()) or self.name != "peeking":
            self._absorb(events)

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Sequence[Collection[str]]) -> list[list[str]]:
        lists = []
        for user, seen in zip(user_ids, exclude, strict=True):
            lists.append(list(dict.fromkeys(i for i in self.learned.get(user, []) if i not in seen))[:k])
        return lists


class Silent:
    name = "silent"

    def learn(self, events: Sequence[Event]) -> None:
        pass

    def recommend(self, user_ids: Sequence[str], k: int, exclude: Sequence[Collection[str]]) -> list[list[str]]:
        return [[] for _ in user_ids]


def test_prequential_scores_each_event_before_its_batch_is_learned() -> None:
    log = generate(n_users=40, n_items=30, seed=2).events
    honest, peeking = Echo("honest"), Echo("peeking", future=log)
    result = run_prequential(log, [honest, peeking], batch_size=8)
    metrics = result.metrics()
    # the honest model only knows seen items, which are excluded: it can never hit
    assert metrics["honest"]["all"]["hit@10"] == 0.0
    assert metrics["peeking"]["all"]["hit@10"] > 0.5


def test_scored_events_are_the_same_for_every_model_and_follow_the_rules() -> None:
    log = [ev("u1", "a", 1), ev("u2", "b", 2),  # batch 1: nobody has a list yet
           ev("u1", "b", 3), ev("u3", "a", 4),  # batch 2: u1 scored; u3 new
           ev("u1", "c", 5, "skip"), ev("u3", "b", 6)]  # batch 3: skip not scored; u3 scored
    result = run_prequential(log, [Popularity(), Silent(), Markov()], batch_size=2,
                             positive=lambda e: e.action != "skip")
    assert result.positions.tolist() == [2, 5]
    assert {len(r) for r in result.ranks.values()} == {2}
    assert result.ranks["silent"].tolist() == [-1, -1]
    # after batch 1 popularity published [a, b] minus u1's seen a -> [b]: u1's b hits at rank 0
    assert result.ranks["popularity"].tolist()[0] == 0
    assert result.slices["new_user"].tolist() == [True, True]
    assert result.groups.tolist() == [0, 1]  # u1, u3: one group per user, for the bootstrap
    assert result.events == 6 and result.users == 3 and result.n_items == 3


def test_prequential_lists_exclude_seen_items_for_every_model() -> None:
    log = generate(n_users=30, n_items=12, seed=4).events

    class Checking(Popularity):
        def recommend(self, user_ids: Sequence[str], k: int, exclude: Sequence[Collection[str]]) -> list[list[str]]:
            lists = super().recommend(user_ids, k, exclude)
            for user, seen, ranked in zip(user_ids, exclude, lists, strict=True):
                assert seen == {e.item_id for e in log[: self.learned] if e.user_id == user}
                assert not set(ranked) & set(seen)
            return lists

        def learn(self, events: Sequence[Event]) -> None:
            self.learned = getattr(self, "learned", 0) + len(events)
            super().learn(events)

    run_prequential(log, [Checking()], batch_size=5)


def test_leave_last_out_holds_out_each_users_last_positive_event() -> None:
    log = [ev("u1", "a", 1), ev("u2", "b", 1), ev("u1", "b", 2), ev("u3", "c", 2),
           ev("u2", "c", 3), ev("u2", "d", 3), ev("u4", "a", 4), ev("u4", "e", 5, "skip")]
    split = split_leave_last_out(log, positive=lambda e: e.action != "skip")
    # u1 -> b, u2 -> d (the later of two equal timestamps); u3 has one event; u4 ends on a skip
    assert [(e.user_id, e.item_id) for e in split.held_out] == [("u1", "b"), ("u2", "d")]
    assert split.held_out_positions == [2, 5]
    assert split.train == [log[i] for i in (0, 1, 3, 4, 6, 7)]


def test_leave_last_out_trains_on_the_rest_and_ranks_for_held_out_users() -> None:
    log = generate(n_users=60, n_items=60, events_per_user=(3, 7), follow=1.0, seed=9)
    split = split_leave_last_out(log.events)
    result = run_leave_last_out(split, [Markov(), Popularity(), Silent()], batch_size=16,
                                catalogue=[i.item_id for i in log.items])
    assert result.scored == len(split.held_out) == 60
    assert result.groups.tolist() == list(range(60))  # one held-out event per user
    metrics = result.metrics()
    assert metrics["markov"]["all"]["hit@10"] > 0.85 > 0.5 > metrics["popularity"]["all"]["hit@10"]
    assert metrics["silent"]["all"]["hit@10"] == 0.0 and metrics["silent"]["coverage@10"] == 0.0
    assert result.n_items == 60


def test_duplicate_model_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        run_prequential([ev("u", "a", 1)], [Popularity(), Popularity()], batch_size=1)


def test_a_model_must_return_one_list_per_user() -> None:
    class Short(Silent):
        name = "short"

        def recommend(self, user_ids: Sequence[str], k: int, exclude: Sequence[Collection[str]]) -> list[list[str]]:
            return []

    with pytest.raises(ValueError, match="returned 0 lists for 1 users"):
        run_prequential([ev("u", "a", 1), ev("u", "b", 2)], [Short()], batch_size=1)


def test_prequential_ranks_line_up_with_positions() -> None:
    log = generate(n_users=20, n_items=15, seed=1).events
    result = run_prequential(log, [Popularity()], batch_size=4)
    assert len(result.positions) == len(result.ranks["popularity"]) == len(result.groups) == result.scored
    assert np.all(np.diff(result.positions) > 0)
    users = [log[p].user_id for p in result.positions]  # same group exactly when same user
    assert all((users[i] == users[j]) == (result.groups[i] == result.groups[j])
               for i in range(len(users)) for j in range(len(users)))
