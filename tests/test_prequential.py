import math

from streamrec.prequential import DistinctCount, PrequentialScore


def test_scores_against_the_latest_published_recommendation() -> None:
    score = PrequentialScore(k=3, n_items=lambda: 10)
    assert score.observe("u", "a") is None  # nothing published yet: counted, not scored
    score.publish("u", ["a", "b", "c", "d"])
    assert score.observe("u", "b") == 1.0  # rank 1
    assert score.observe("u", "d") == 0.0  # beyond k
    score.publish("u", ["x"])
    assert score.observe("u", "a") == 0.0
    assert score.observe("u", "x", scored=False) is None
    summary = score.summary()
    assert summary["events"] == 5 and summary["scored_events"] == 3
    assert math.isclose(summary["hit@3"], 1 / 3)
    assert math.isclose(summary["ndcg@3"], (1 / math.log2(3)) / 3)
    assert math.isclose(summary["mrr@3"], 0.5 / 3)
    assert math.isclose(summary["coverage@3"], 4 / 10)  # a, b, c, x


def test_distinct_count_is_exact_up_to_its_limit_then_estimates_within_a_few_percent() -> None:
    count = DistinctCount(exact_up_to=1000)
    for i in range(1000):
        count.add(f"u{i}")
        count.add(f"u{i}")  # repeats count once
    assert (count.value, count.estimated) == (1000, False)
    for i in range(1000, 50_000):
        count.add(f"u{i}")
    assert count.estimated
    assert abs(count.value - 50_000) < 0.03 * 50_000  # 2**14 registers: about 0.8 % standard error
    assert count._registers.nbytes == 1 << 14  # bounded: no key kept


def test_latest_recommendations_are_kept_for_max_users_users() -> None:
    score = PrequentialScore(k=3, n_items=lambda: 10, max_users=2)
    for user in ["a", "b", "c"]:
        score.publish(user, ["x"])
    assert score.observe("a", "x") is None  # the least recently served user's list was dropped
    assert score.observe("c", "x") == 1.0
