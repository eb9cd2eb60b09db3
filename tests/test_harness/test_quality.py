import math

import numpy as np
import pytest

from harness.quality import (
    head_threshold,
    paired_bootstrap,
    per_event,
    rank_metrics,
    rolling_hit_rate,
    sliced_metrics,
)
from harness.stream import StreamState
from streamrec.events import Event


def test_rank_metrics_match_hand_computed_values() -> None:
    ranks = np.array([0, 2, -1, -1, 9])  # hits at ranks 1, 3 and 10 of 5 events
    got = rank_metrics(ranks, k=10)
    assert got["hit@10"] == 3 / 5
    assert math.isclose(got["ndcg@10"], (1 / math.log2(2) + 1 / math.log2(4) + 1 / math.log2(11)) / 5)
    assert math.isclose(got["mrr@10"], (1 + 1 / 3 + 1 / 10) / 5)


def test_ranks_at_or_beyond_k_are_misses_and_empty_input_is_zero() -> None:
    assert rank_metrics(np.array([5, 0]), k=5) == {"hit@5": 0.5, "ndcg@5": 0.5, "mrr@5": 0.5}
    assert rank_metrics(np.array([], dtype=np.int64), k=10)["hit@10"] == 0.0


def test_slices_score_only_their_events_and_count_them() -> None:
    ranks = np.array([0, -1, 1, -1])
    out = sliced_metrics(ranks, {"cold_item": np.array([True, True, False, False]),
                                 "new_user": np.zeros(4, dtype=bool)}, k=10)
    assert out["all"]["hit@10"] == 0.5 and out["all"]["events"] == 4
    assert out["cold_item"] == {"hit@10": 0.5, "ndcg@10": 0.5, "mrr@10": 0.5, "events": 2}
    assert out["new_user"]["events"] == 0 and out["new_user"]["hit@10"] == 0.0


def test_rolling_hit_rate_is_a_moving_average_over_scored_events() -> None:
    ranks = np.array([0, 0, -1, -1, -1, 3])
    ends, rates = rolling_hit_rate(ranks, k=10, window=3, points=100)
    assert ends.tolist() == [3, 4, 5, 6]
    assert np.allclose(rates, [2 / 3, 1 / 3, 0.0, 1 / 3])
    assert len(rolling_hit_rate(ranks, k=10, window=7)[0]) == 0


def test_head_threshold_is_the_top_fifth_of_items_seen_so_far() -> None:
    counts = np.array([0, 0, 10, 8, 8, 1, 1, 1, 1, 1, 1, 1])  # 10 items seen: the top 2 are the head
    assert head_threshold(counts) == 8.0  # both 8s count: ties at the boundary are head
    assert head_threshold(np.zeros(3)) == float("inf")


def test_stream_state_flags_use_what_was_learned_before() -> None:
    state = StreamState(["hit", "rare", "never"])
    history = [Event(f"u{n}", "hit", "view", n) for n in range(6)] + [Event("u0", "rare", "view", 10)]
    history += [Event("u0", f"x{n}", "view", 20 + n) for n in range(3)]
    state.learn(history)
    # u0 has 5 events: not new; "hit" (6 interactions) is warm and, of 5 seen items, the only head one
    assert state.flags(Event("u0", "hit", "view", 99)) == (False, False, False, False)
    assert state.flags(Event("u9", "rare", "view", 99)) == (True, True, True, False)  # taken once: not unseen
    assert state.flags(Event("u1", "never", "view", 99)) == (True, True, True, True)
    assert state.n_items == 6 and state.seen("u0") == {"hit", "rare", "x0", "x1", "x2"}


def test_stream_state_seen_items_follow_exclude_actions() -> None:
    state = StreamState(exclude_actions=["purchase"])
    state.learn([Event("u", "a", "view", 1), Event("u", "b", "purchase", 2)])
    assert state.seen("u") == {"b"} and state.user_count("u") == 2


def test_stream_state_counts_items_first_met_in_the_stream_past_its_initial_room() -> None:
    # no catalogue up front (a generic log without item text): every item is first met in a batch
    state = StreamState()
    state.learn([Event("u", f"i{n}", "view", n) for n in range(3000)] + [Event("v", "i2999", "view", 1)])
    assert state.n_items == 3000 and state.item_count("i0") == 1 and state.item_count("i2999") == 2


def test_per_event_values_are_each_events_share_of_the_mean() -> None:
    ranks = np.array([0, 2, -1, 10])  # k=10: rank 10 is the 11th place, a miss
    assert per_event(ranks, 10, "hit").tolist() == [1.0, 1.0, 0.0, 0.0]
    assert per_event(ranks, 10, "ndcg").tolist() == [1.0, 0.5, 0.0, 0.0]
    summary = rank_metrics(ranks, 10)
    assert per_event(ranks, 10, "ndcg").mean() == summary["ndcg@10"]
    with pytest.raises(ValueError, match="hit"):
        per_event(ranks, 10, "mrr")


def test_paired_bootstrap_of_a_model_against_itself_is_exactly_even() -> None:
    rng = np.random.default_rng(1)
    values, groups = rng.integers(0, 2, 500).astype(float), rng.integers(0, 40, 500)
    ci = paired_bootstrap(values, values, groups, resamples=200)
    assert ci["ratio"] == ci["ratio_low"] == ci["ratio_high"] == 1.0
    assert ci["difference_low"] == ci["difference_high"] == 0.0 and ci["groups"] == 40


def test_paired_bootstrap_separates_a_clear_win_from_a_coin_flip() -> None:
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(200), 5)
    theirs = (rng.random(1000) < 0.1).astype(float)
    better = np.maximum(theirs, rng.random(1000) < 0.1)  # hits wherever theirs does, and more
    noise = (rng.random(1000) < 0.1).astype(float)  # another draw of the same hit rate
    win, tie = paired_bootstrap(better, theirs, groups), paired_bootstrap(noise, theirs, groups)
    assert 1.0 < win["ratio_low"] < win["ratio"] < win["ratio_high"]
    assert win["difference_low"] > 0.0
    assert tie["ratio_low"] < 1.0 < tie["ratio_high"] and tie["difference_low"] < 0.0 < tie["difference_high"]
    assert paired_bootstrap(better, theirs, groups) == win  # seeded: the same interval every run


def test_paired_bootstrap_resamples_users_not_events() -> None:
    # 20 users with 50 events each; whether ours beats theirs depends on the user, not the event
    users = np.repeat(np.arange(20), 50)
    ours = np.repeat(np.arange(20) % 2, 50).astype(float)
    theirs = np.full(1000, 0.5)
    by_user = paired_bootstrap(ours, theirs, users)
    by_event = paired_bootstrap(ours, theirs, np.arange(1000))
    width = by_user["difference_high"] - by_user["difference_low"]
    assert width > 4 * (by_event["difference_high"] - by_event["difference_low"])
    assert by_user["difference_low"] < 0.0 < by_user["difference_high"]  # 10 good users of 20: no verdict


def test_paired_bootstrap_has_no_ratio_against_a_model_that_never_hits() -> None:
    ci = paired_bootstrap(np.array([1.0, 0.0]), np.zeros(2), np.array([0, 1]), resamples=50)
    assert math.isnan(ci["ratio"]) and math.isnan(ci["ratio_low"]) and ci["difference"] == 0.5
    with pytest.raises(ValueError, match="one value per event"):
        paired_bootstrap(np.zeros(3), np.zeros(2), np.zeros(3))
