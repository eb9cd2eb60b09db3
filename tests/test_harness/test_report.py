import numpy as np
import pytest

from harness.protocols import ProtocolResult
from harness.quality import SLICES
from harness.report import DEFAULT_TARGETS, RatioTarget, Targets, check_targets, comparisons, markdown


def result_with(ranks: dict[str, list[int]], users: int = 200) -> ProtocolResult:
    n = len(next(iter(ranks.values())))
    return ProtocolResult(
        protocol="prequential", k=10, events=n, ranks={m: np.array(r) for m, r in ranks.items()},
        slices={s: np.zeros(n, dtype=bool) for s in SLICES}, positions=np.arange(n),
        coverage=dict.fromkeys(ranks, 1.0), seconds=dict.fromkeys(ranks, 1.0), cpu_seconds=dict.fromkeys(ranks, 1.0),
        n_items=50, users=users, groups=np.arange(n) % users)


def report_of(result: ProtocolResult, events: int | None = None) -> dict:
    return {"protocols": {"prequential": {"models": result.metrics(), "events": events or result.events}}}


def test_text_beats_ids_only_only_when_the_interval_clears_zero() -> None:
    rng = np.random.default_rng(0)
    ids = np.where(rng.random(4000) < 0.1, 0, -1)
    clear = np.where(rng.random(4000) < 0.1, 0, ids)  # about 9 points more hit rate, spread over all users
    slight = ids.copy()
    slight[np.flatnonzero(ids < 0)[0]] = 0  # one more hit in 4,000 events
    for streamrec, expected in ((clear, True), (slight, False)):
        result = result_with({"popularity": ids, "streamrec": streamrec, "streamrec-ids-only": ids})
        target = check_targets(report_of(result), result)["text beats ids-only"]
        assert target["streamrec"] > target["ids_only"] and target["met"] is expected
        assert (target["ci"]["difference_low"] > 0) is expected


def test_ratio_targets_carry_their_interval_into_the_markdown() -> None:
    result = result_with({"popularity": [0, -1] * 100, "streamrec": [0, 0] * 100})
    found = check_targets(report_of(result), result)
    hit = found["all hit@10"]
    assert hit["ratio"] == 2.0 and hit["met"] and hit["best_baseline"] == "popularity"
    assert hit["ci"]["ratio_low"] <= 2.0 <= hit["ci"]["ratio_high"] and hit["ci"]["groups"] == 200
    assert "ci" not in check_targets(report_of(result))["all hit@10"]  # no ranks, no interval
    lines = markdown(minimal_report(found)).splitlines()
    assert any(line.startswith("- all hit@10: streamrec 1.0000 vs popularity 0.5000 = 2.00x; 95% CI ")
               for line in lines)
    assert any(line.startswith("Intervals: a bootstrap over users (2,000 Poisson resamples") for line in lines)


def test_the_replay_budget_is_30_minutes_for_ml_100k_and_as_long_per_event_for_a_longer_log() -> None:
    result = result_with({"popularity": [0, -1] * 100, "streamrec": [0, 0] * 100})
    result.seconds["streamrec"] = 2900.0  # ml-1m took 2,902 s on the project's machine
    short = check_targets(report_of(result, events=100_000), result)["replay within 30 min"]
    assert short["budget_seconds"] == 1800 and not short["met"] and "budget" not in short["note"]
    small = check_targets(report_of(result, events=2_000), result)["replay within 30 min"]
    assert small["budget_seconds"] == 1800 and not small["met"]  # never less than 30 minutes
    long = check_targets(report_of(result, events=1_000_209), result)["replay within 30 min"]
    assert long["budget_seconds"] == pytest.approx(18003.762) and long["met"]
    assert long["note"].endswith("1,000,209 events: budget 18,004 s, 30 min per 100,000 events")


def test_the_targets_are_parameters_and_the_defaults_are_the_documented_ones() -> None:
    assert DEFAULT_TARGETS.ratios == (RatioTarget("hit@10", "all", 1.2), RatioTarget("ndcg@10", "all", 1.2),
                                      RatioTarget("hit@10", "cold_item", 1.5))
    result = result_with({"popularity": [0, -1] * 100, "streamrec": [0, 0] * 100})
    stricter = Targets(ratios=(RatioTarget("hit@10", "all", 2.5),), replay_seconds=3600.0, replay_events=50_000)
    found = check_targets(report_of(result, events=100_000), result, stricter)
    assert set(found) == {"all hit@10", "replay within 60 min"}
    assert found["all hit@10"]["ratio"] == 2.0 and found["all hit@10"]["target_ratio"] == 2.5
    assert not found["all hit@10"]["met"]
    replay = found["replay within 60 min"]
    assert replay["budget_seconds"] == 7200 and replay["met"]
    assert replay["note"].endswith("100,000 events: budget 7,200 s, 60 min per 50,000 events")


def test_every_protocol_pairs_each_pipeline_with_the_best_baseline_and_the_warm_start_with_one_pass() -> None:
    result = result_with({"popularity": [0, -1, -1, -1] * 50, "markov": [0, 0, -1, -1] * 50,
                          "streamrec": [0, 0, 0, -1] * 50, "streamrec-warm": [0, 0, 0, 0] * 50})
    result.protocol = "leave-last-out"
    found = {(c["model"], c["against"], c["metric"], c["scope"]): c for c in comparisons(result)}
    assert set(found) == {("streamrec", "markov", "hit@10", "all"), ("streamrec", "markov", "ndcg@10", "all"),
                          ("streamrec", "popularity", "hit@10", "cold_item"),  # no cold events: the first baseline
                          ("streamrec-warm", "markov", "hit@10", "all"), ("streamrec-warm", "markov", "ndcg@10", "all"),
                          ("streamrec-warm", "popularity", "hit@10", "cold_item"),
                          ("streamrec-warm", "streamrec", "hit@10", "all"),
                          ("streamrec-warm", "streamrec", "ndcg@10", "all")}
    warm = found[("streamrec-warm", "streamrec", "hit@10", "all")]
    assert (warm["ours"], warm["theirs"]) == (1.0, 0.75)
    assert warm["ci"]["difference_low"] <= 0.25 <= warm["ci"]["difference_high"] and warm["ci"]["groups"] == 200
    report = minimal_report({})
    report["protocols"] = {"leave-last-out": {"batch_size": 64, "models": {}, "slice_events": {}, "scored_events": 200,
                                              "events": 200, "items": 50, "wall_seconds": 1.0,
                                              "pipelines": {}, "comparisons": list(found.values())}}
    assert ("| leave-last-out | streamrec-warm | streamrec | hit@10 | 1.0000 | 0.7500 | 1.33x ("
            in markdown(report))


def minimal_report(found: dict) -> dict:
    return {"dataset": {"name": "t", "location": "t", "source": "t", "events": 1, "users": 1, "items_with_text": 0,
                        "rejected_records": 0},
            "machine": {"cpu": "c", "cores": 1, "torch_threads": 1, "gpu": None, "date": "d"},
            "encoder": {}, "command": [], "protocols": {}, "targets": found}
