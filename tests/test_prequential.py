import math

from streamrec.prequential import PrequentialScore


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
