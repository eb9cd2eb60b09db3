"""Candidate generation: each source contributes, exclusions hold, a new item can come up, and
the recall of the stage is counted."""

from __future__ import annotations

import torch

from streamrec.ann import TextIndex
from streamrec.candidates import CandidateGenerator, Trending
from streamrec.config import RetrievalSettings
from streamrec.sparse_cooccurrence import SparseCooccurrence


def _settings(**quotas: int) -> RetrievalSettings:
    base = {"candidates_cooccurrence": 3, "candidates_text": 2, "candidates_popular": 2, "candidates_trending": 1,
            "candidates_new": 2}
    return RetrievalSettings(**{**base, **quotas})


def _index() -> SparseCooccurrence:
    index = SparseCooccurrence(history=3, decay=0.9, slots=8)
    for _ in range(5):  # 0 -> 1 -> 2 a chain; 3 popular; items 10.. never taken
        index.learn([], 0)
        index.learn([0], 1)
        index.learn([1, 0], 2)
    for _ in range(20):
        index.learn([], 3)
    return index


def test_sources_in_precedence_without_seen_or_blocked_items() -> None:
    index = _index()
    text = TextIndex(dim=2)
    text.put(torch.arange(12), torch.tensor([[1.0, 0.1 * i] for i in range(12)]))
    trending = Trending(half_life=100)
    for item in [5, 5, 5, 4]:
        trending.learn(item)
    generator = CandidateGenerator(_settings(), index, text, trending)
    recent = torch.tensor([[0, -1, -1]])
    blocked = torch.zeros(12, dtype=torch.bool)
    blocked[11] = True
    out = generator.generate(recent, torch.tensor([[1.0, 1.1]]), 12, [{0}], blocked)[0].tolist()
    picked = [i for i in out if i >= 0]
    assert picked[:2] == [1, 2]  # co-occurrence first: what follows item 0
    assert 0 not in picked and 11 not in picked  # seen, blocked
    assert {3, 5} <= set(picked)  # popular and trending
    assert 10 in picked  # the newest item nobody has taken
    assert len(picked) == len(set(picked)) and out.count(-1) == generator.size - len(picked)
    assert set(generator.stats.contributed) == {"cooccurrence", "text", "popular", "trending", "new"}


def test_a_user_with_no_history_still_gets_popular_and_new_items() -> None:
    generator = CandidateGenerator(_settings(), _index(), None, None)
    out = generator.generate(torch.tensor([[-1, -1, -1]]), None, 14, [set()], torch.zeros(14, dtype=torch.bool))
    picked = [i for i in out[0].tolist() if i >= 0]
    assert picked[0] == 3  # the most taken first
    assert {13, 12} <= set(picked)  # the two newest untaken items


def test_recall_counts_targets_found_among_candidates() -> None:
    generator = CandidateGenerator(_settings(), _index(), None, None)
    candidates = torch.tensor([[1, 2, -1], [4, 5, 6]])
    found = generator.observe_targets(candidates, torch.tensor([2, 7]))
    assert found.tolist() == [True, False] and generator.stats.recall == 0.5


def test_trending_forgets_what_is_no_longer_taken() -> None:
    trending = Trending(half_life=10)
    for _ in range(50):
        trending.learn(1)
    for _ in range(60):
        trending.learn(2)
    assert trending.top(2).tolist() == [2, 1] and trending.top(5).tolist() == [2, 1]


def test_new_items_are_looked_for_among_the_newest_only() -> None:
    index = SparseCooccurrence(history=1, decay=1.0, slots=2)
    for item in range(1, 300):  # every item but the oldest has been taken
        index.learn([], item)
    generator = CandidateGenerator(_settings(candidates_new=2), index, None, None)
    assert generator._newest_untaken(2, 300).tolist() == []  # item 0 is not new: 299 items came after it
    index.grow(302)  # two items arrive, nobody has taken them
    assert generator._newest_untaken(2, 302).tolist() == [301, 300]
