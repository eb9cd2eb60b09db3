"""The ranker's signals: each names its rows, and the rows come out in the names' order."""

from __future__ import annotations

import pytest
import torch

from streamrec.config import load_settings
from streamrec.cooccurrence import ItemCooccurrence
from streamrec.neighbours import TextNeighbours
from streamrec.signals import Scores, Signal, build_signals, feature_names, score_rows


def _index() -> ItemCooccurrence:
    index = ItemCooccurrence(history=5, decay=0.85, capacity=8)
    for recent, item in [([0], 1), ([1, 0], 2), ([2, 1], 1), ([1], 3)]:
        index.learn(recent + [-1] * (5 - len(recent)), item)
    return index


def _scores(users: int = 2, items: int = 6) -> Scores:
    torch.manual_seed(0)
    recent = torch.tensor([[1, 0, -1, -1, -1], [2, -1, -1, -1, -1]])[:users]
    return Scores(torch.randn(users, items), recent, torch.randn(items, 4))


def test_feature_names_follow_the_settings() -> None:
    everything = build_signals(load_settings().head, _index(), 5, TextNeighbours(2))
    assert feature_names(everything) == [
        "head", "cooccurrence", "cooccurrence_recent", "popularity", "text",
        "items_new", "items_cold", "head_new", "head_cold", "text_new", "text_cold", "neighbours_new",
        "neighbours_cold"]
    ids_only = build_signals(load_settings(head={"text_features": False}).head, _index(), 5, None)
    assert feature_names(ids_only) == ["head", "cooccurrence", "cooccurrence_recent", "popularity",
                                       "items_new", "items_cold", "head_new", "head_cold"]
    assert feature_names(build_signals(load_settings().head, None, 5, None)) == ["head"]


def test_rows_come_out_in_feature_order_and_are_kept_by_name() -> None:
    signals = build_signals(load_settings().head, _index(), 2, TextNeighbours(2))
    scores = _scores()
    rows = score_rows(signals, scores)
    assert len(rows) == len(feature_names(signals))
    for name, row in zip(feature_names(signals), rows, strict=True):
        assert row is scores.rows[name]
        assert row.shape[-1] == 6 and row.shape[0] in (1, 2)
    assert torch.equal(scores.rows["head"], scores.head)
    new = scores.rows["items_new"][0]  # items nobody has taken: 4 and 5 (and 0, only ever a context)
    assert new.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert torch.all(scores.rows["head_new"][:, new == 0] == 0)  # a stage's rows live on its items only


def test_a_signal_giving_too_few_rows_is_an_error() -> None:
    class Broken:
        names = ("a", "b")

        def rows(self, scores: Scores) -> list[torch.Tensor]:
            return [scores.head]

    broken: Signal = Broken()
    with pytest.raises(ValueError):
        score_rows([broken], _scores())
