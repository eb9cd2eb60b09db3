import pickle

import numpy as np
import pytest

from harness.baselines import CooccurrenceKNN, Markov, Popularity, RecentPopularity
from harness.models import StreamingModel, top_k
from harness.river_mf import BiasedMF
from streamrec.events import Event
from streamrec.synthetic import generate

HOUR = 3_600_000
WEIGHTS = {"view": 1.0, "skip": 0.0}


def ev(user: str, item: str, t: int = 0, action: str = "view") -> Event:
    return Event(user, item, action, t)


def test_top_k_breaks_ties_by_catalogue_order_and_skips_excluded() -> None:
    assert top_k(np.array([0.0, 2.0, 2.0, 1.0, np.nan]), 3) == [1, 2, 3]
    assert top_k(np.array([5.0, 1.0]), 5, excluded=[0]) == [1]


def test_popularity_ranks_by_count_excludes_seen_and_ignores_skips() -> None:
    model = Popularity(["a", "b", "c", "d"], WEIGHTS)
    model.learn([ev("u1", "c"), ev("u2", "c"), ev("u3", "b"), ev("u1", "d", action="skip"),
                 ev("u2", "d", action="skip")])
    assert model.recommend(["u9", "u1"], 3, [set(), {"c"}]) == [["c", "b", "a"], ["b", "a", "d"]]


def test_recent_popularity_lets_fresh_interest_beat_an_older_larger_count() -> None:
    model = RecentPopularity(["old", "new"], half_life_hours=1.0)
    model.learn([ev(f"u{n}", "old", 0) for n in range(3)])
    model.learn([ev("v1", "new", 3 * HOUR), ev("v2", "new", 3 * HOUR)])  # 3 * 1/8 < 2
    assert model.recommend(["x"], 2, [()]) == [["new", "old"]]
    plain = Popularity(["old", "new"])
    plain.learn([ev(f"u{n}", "old", 0) for n in range(3)] + [ev("v1", "new"), ev("v2", "new")])
    assert plain.recommend(["x"], 2, [()]) == [["old", "new"]]


def test_markov_predicts_the_planted_successor() -> None:
    log = generate(n_users=150, n_items=40, events_per_user=(10, 20), follow=1.0, seed=3)
    model = Markov([i.item_id for i in log.items])
    model.learn(log.events[: len(log.events) // 2])
    users = sorted({e.user_id for e in log.events[: len(log.events) // 2]})
    top1 = model.recommend(users, 1, [()] * len(users))
    planted = [log.successor[model.ids[model.last_item[u]]] for u in users]
    assert np.mean([ranked == [want] for ranked, want in zip(top1, planted, strict=True)]) > 0.95


def test_markov_follows_the_last_item_only_and_backfills_with_popularity() -> None:
    model = Markov(["a", "b", "c", "d"])
    model.learn([ev("u1", "a"), ev("u1", "b"), ev("u2", "c"), ev("u2", "d"), ev("u2", "d"), ev("u3", "c")])
    # u3's last item is c, whose successor is d; then the most popular of the rest (d > a = b = c)
    assert model.recommend(["u3"], 3, [{"c"}]) == [["d", "a", "b"]]


def test_knn_weights_recent_items_more() -> None:
    # x goes with "old", y with "new"; the user took old, then new
    train = [ev("p", "old"), ev("p", "x"), ev("q", "new"), ev("q", "y"), ev("u", "old"), ev("u", "new")]
    for decay, first in ((0.5, "y"), (1.0, None)):
        model = CooccurrenceKNN(["old", "new", "x", "y"], decay=decay)
        model.learn(train)
        ranked = model.recommend(["u"], 2, [{"old", "new"}])[0]
        scores = model.scores(["u"])[0]
        if first is None:  # no recency weighting: x and y tie on similarity
            assert scores[model.index_of("x")] == pytest.approx(scores[model.index_of("y")], abs=1e-5)
        else:
            assert ranked[0] == first and scores[model.index_of("y")] > 1.5 * scores[model.index_of("x")]


def test_knn_alpha_trades_a_rare_match_for_a_popular_one() -> None:
    # "rare" went with the anchor once (and nowhere else); "popular" twice, and 6 times alone
    train = [ev("p", "anchor"), ev("p", "rare"), ev("q1", "anchor"), ev("q1", "popular"),
             ev("q2", "anchor"), ev("q2", "popular"), *[ev(f"o{i}", "popular") for i in range(6)],
             ev("u", "anchor")]
    for alpha, first in ((0.5, "rare"), (0.8, "popular")):  # 1/sqrt(3) > 2/sqrt(24); 1/3**.8 < 2/(3**.8 8**.2)
        model = CooccurrenceKNN(["anchor", "rare", "popular"], alpha=alpha)
        model.learn(train)
        assert model.recommend(["u"], 1, [{"anchor"}]) == [[first]]


def test_knn_cold_boost_lifts_a_cold_match_over_a_popular_one() -> None:
    # as above, with alpha 0.8 "popular" (8 interactions) wins; "rare" (1, so cold) wins once boosted
    train = [ev("p", "anchor"), ev("p", "rare"), ev("q1", "anchor"), ev("q1", "popular"),
             ev("q2", "anchor"), ev("q2", "popular"), *[ev(f"o{i}", "popular") for i in range(6)],
             ev("u", "anchor")]
    plain, boosted = (CooccurrenceKNN(["anchor", "rare", "popular"], alpha=0.8, cold_boost=b) for b in (0.0, 1.0))
    for model in (plain, boosted):
        model.learn(train)
    assert plain.recommend(["u"], 1, [{"anchor"}]) == [["popular"]]
    assert boosted.recommend(["u"], 1, [{"anchor"}]) == [["rare"]]
    popular = plain.index_of("popular")
    assert boosted.scores(["u"])[0, popular] == plain.scores(["u"])[0, popular]  # warm items keep their score


def test_knn_only_counts_pairs_within_the_history() -> None:
    model = CooccurrenceKNN(["a", "b", "c", "d"], history=2)
    model.learn([ev("u", "a"), ev("u", "b"), ev("u", "c"), ev("u", "d")])  # a and d are 3 apart: too far
    c = model.cooccurrence
    assert c[0, 1] == c[0, 2] == c[1, 3] == c[3, 1] == 1 and c[0, 3] == c[3, 0] == 0


def test_biased_mf_ranks_from_rivers_weights_exactly_as_predict_one() -> None:
    log = generate(n_users=30, n_items=25, seed=5)
    model = BiasedMF([i.item_id for i in log.items], negatives=2, seed=1)
    model.learn(log.events)
    scores = model.scores(["u3"])[0]
    for item in ("0", "7", "19"):
        assert scores[model.index_of(item)] == pytest.approx(model.river.predict_one("u3", item), abs=1e-9)


def test_new_items_join_the_catalogue_for_every_baseline() -> None:
    for cls in (Popularity, RecentPopularity, Markov, CooccurrenceKNN, BiasedMF):
        model = cls(["a"])
        assert isinstance(model, StreamingModel)
        model.learn([ev("u", "a", 1), ev("v", "a", 2), ev("v", "b", 3)] + [ev("w", f"n{i}", 4) for i in range(1100)])
        (ranked,) = model.recommend(["u"], 2, [{"a"}])
        assert model.n_items == 1102 and len(ranked) == 2 and "a" not in ranked
        pickle.loads(pickle.dumps(model))  # state is plain data


def test_knn_refuses_a_catalogue_past_its_dense_limit() -> None:
    with pytest.raises(MemoryError, match="max_items"):
        CooccurrenceKNN([str(i) for i in range(1500)], max_items=1200)


def test_cooccurrence_knn_fills_its_cap_without_doubling_past_it() -> None:
    """A catalogue below max_items never fails, although the doubled capacity would pass it."""
    model = CooccurrenceKNN([str(i) for i in range(1100)], max_items=1200)  # capacity doubles to 2048 rows
    model.learn([ev("u", str(i), i) for i in range(1100, 1199)])
    assert model.n_items == 1199 and model.cooccurrence.shape == (1200, 1200)
    with pytest.raises(MemoryError, match="1201 items"):
        model.learn([ev("u", str(i), i) for i in range(1199, 1201)])
