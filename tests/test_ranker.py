import pytest
import torch

from streamrec.errors import UsageError
from streamrec.ranker import OnlineRanker, boost_cold, standardised

N_ITEMS = 50


def _signal(targets: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    scores = torch.randn(len(targets), N_ITEMS, generator=generator)
    scores[torch.arange(len(targets)), targets] += strength
    return scores


def _stream(ranker: OnlineRanker, strengths: list[float], batches: int = 60, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        targets = torch.randint(N_ITEMS, (16,), generator=generator)
        features = torch.stack([_signal(targets, s, generator) for s in strengths])
        ranker.observe(features, targets, torch.zeros(16, N_ITEMS, dtype=torch.bool))


def test_weights_follow_the_signals_that_rank_the_stream() -> None:
    ranker = OnlineRanker(["head", "cooccurrence", "popularity"])  # starts at 1, 1, 0
    _stream(ranker, [0.0, 3.0, 1.5])  # the head knows nothing; popularity half of what cooc knows
    w = {f: ranker.weight(f) for f in ranker.features}
    assert w["cooccurrence"] > w["popularity"] > w["head"] and abs(w["head"]) < 0.5
    assert ranker.observed == 60 * 16


def test_the_learned_blend_beats_each_signal_alone() -> None:
    ranker = OnlineRanker(["head", "cooccurrence"], k=3)
    _stream(ranker, [1.5, 1.5], batches=80)
    generator = torch.Generator().manual_seed(9)
    targets = torch.randint(N_ITEMS, (2000,), generator=generator)
    features = torch.stack([_signal(targets, 1.5, generator) for _ in range(2)])

    def hit_rate(scores: torch.Tensor) -> float:
        target = scores[torch.arange(len(targets)), targets].unsqueeze(1)
        return float(((scores > target).sum(dim=1) < 3).float().mean())

    assert hit_rate(ranker.combine(features)) > 1.1 * max(hit_rate(features[0]), hit_rate(features[1]))


def test_hits_are_counted_before_learning_and_seen_items_are_skipped() -> None:
    ranker = OnlineRanker(["head"], k=1, learning_rate=1e-6)
    head = torch.tensor([[5.0, 4.0, 1.0]])
    ranker.observe(head.unsqueeze(0), torch.tensor([1]), torch.tensor([[True, False, False]]))
    assert ranker.hit_rate == 1.0  # item 0 (seen) would have outranked it
    ranker.observe(head.unsqueeze(0), torch.tensor([1]), torch.zeros(1, 3, dtype=torch.bool))
    assert 0.49 < ranker.hit_rate < 0.51


def test_events_missed_by_the_candidates_count_as_misses_and_teach_nothing() -> None:
    ranker = OnlineRanker(["head"], k=1)
    head = torch.tensor([[5.0, 4.0, 1.0]])
    before = ranker.weights.detach().clone()
    ranker.observe(head.unsqueeze(0)[:, :0], torch.tensor([], dtype=torch.long), torch.zeros(0, 3, dtype=torch.bool),
                   missed=3)
    assert ranker.hit_rate == 0.0 and ranker.observed == 0 and torch.equal(ranker.weights.detach(), before)
    ranker = OnlineRanker(["head"], k=1)
    ranker.observe(head.unsqueeze(0), torch.tensor([0]), torch.zeros(1, 3, dtype=torch.bool), missed=1)
    assert 0.49 < ranker.hit_rate < 0.51 and ranker.observed == 1  # one hit, one miss


def test_standardised_rows_are_scale_free_and_keep_infinities() -> None:
    rows = torch.tensor([[1.0, 2.0, 3.0, float("-inf")], [100.0, 200.0, 300.0, 400.0]])
    out = standardised(rows)
    assert out[0, :3].tolist() == pytest.approx([-1.2247, 0.0, 1.2247], abs=1e-3)
    assert out[0, 3] == float("-inf") and torch.isfinite(out[1]).all()
    assert standardised(torch.zeros(1, 4)).abs().sum() == 0  # a constant row says nothing


def test_a_row_shared_by_every_user_blends_and_learns_as_if_repeated_per_user() -> None:
    generator = torch.Generator().manual_seed(3)
    targets = torch.randint(N_ITEMS, (16,), generator=generator)
    head = _signal(targets, 1.0, generator)
    popularity = torch.randn(1, N_ITEMS, generator=generator)
    shared, repeated = OnlineRanker(["head", "popularity"]), OnlineRanker(["head", "popularity"])
    for _ in range(5):
        shared.observe([head, popularity], targets, torch.zeros(16, N_ITEMS, dtype=torch.bool))
        repeated.observe(torch.stack([head, popularity.expand_as(head)]), targets,
                         torch.zeros(16, N_ITEMS, dtype=torch.bool))
    assert shared.weight("popularity") != 0.0  # it learned something, and the same thing
    assert torch.allclose(shared.weights, repeated.weights, atol=1e-6)
    assert torch.allclose(shared.combine([head, popularity]),
                          repeated.combine(torch.stack([head, popularity.expand_as(head)])), atol=1e-5)
    with pytest.raises(UsageError, match="1 score rows for 2 ranker features"):
        shared.combine([head])


def test_standardised_takes_the_same_values_with_or_without_an_infinity_elsewhere() -> None:
    rows = torch.randn(3, 40, generator=torch.Generator().manual_seed(1)) * 7 + 2
    with_inf = torch.cat([rows, torch.tensor([[float("-inf")]] * 3)], dim=1)
    assert torch.allclose(standardised(rows), standardised(with_inf)[:, :40], atol=1e-5)


def test_state_round_trips_and_other_features_start_over() -> None:
    ranker = OnlineRanker(["head", "cooccurrence"])
    _stream(ranker, [0.0, 3.0], batches=5)
    restored = OnlineRanker(["head", "cooccurrence"])
    restored.restore(ranker.state(), ["head", "cooccurrence"])
    assert torch.equal(restored.weights, ranker.weights) and restored.observed == ranker.observed
    assert restored.hit_rate == pytest.approx(ranker.hit_rate)
    _stream(ranker, [0.0, 3.0], batches=1, seed=5)
    _stream(restored, [0.0, 3.0], batches=1, seed=5)  # Adam moments came along: the same next step
    assert torch.allclose(restored.weights, ranker.weights)
    other = OnlineRanker(["head", "cooccurrence"])
    other.restore(ranker.state(), ["head", "cooccurrence", "text"])
    assert other.observed == 0


def test_the_cold_boost_lifts_only_cold_items_that_score_above_the_users_mean() -> None:
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    cold = torch.tensor([False, True, False, True, True])
    boosted = boost_cold(scores, cold, 2.0)
    raised = boosted > scores
    assert raised.tolist() == [[False, True, False, False, False], [False, False, False, True, True]]
    assert torch.equal(boosted[~raised], scores[~raised])  # warm items, and cold ones at or below the mean
    assert boosted[0, 1] > boosted[0, 0]  # boosted far enough, a cold item overtakes a warm one
    assert boosted[1, 4] - scores[1, 4] > boosted[1, 3] - scores[1, 3]  # in proportion to the score
    assert torch.equal(boost_cold(scores, cold, 0.0), scores)
