from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from streamrec.catalog import Catalog, Item
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.events import Event
from streamrec.pipeline import Pipeline
from streamrec.recommendations import Recommendation
from streamrec.replay import replay
from streamrec.synthetic import SyntheticLog, generate

MakeSettings = Callable[..., Settings]


def popularity_hit_rate(events: list[Event], k: int = 10) -> float:
    """Streaming popularity with the same seen-item exclusion, scored the same way."""
    counts: Counter[str] = Counter()
    seen: dict[str, set[str]] = {}
    hits = scored = 0
    for event in events:
        if event.user_id in seen:
            ranked = [i for i, _ in counts.most_common(k + len(seen[event.user_id]))]
            top = [i for i in ranked if i not in seen[event.user_id]][:k]
            scored += 1
            hits += event.item_id in top
        seen.setdefault(event.user_id, set()).add(event.item_id)
        counts[event.item_id] += 1
    return hits / scored


@pytest.mark.slow  # over 30 s on 2 cores
def test_head_learns_planted_structure_and_beats_popularity(
    make_settings: MakeSettings, tiny_encoder: HFEncoder
) -> None:
    log = generate(n_users=250, n_items=120, seed=3)
    pipeline = Pipeline(make_settings(batch={"max_size": 32}), tiny_encoder, Catalog(log.items))
    metrics = replay(pipeline, log.events, progress=False)
    baseline = popularity_hit_rate(log.events)
    print(f"pipeline hit@10={metrics['hit@10']:.3f} popularity={baseline:.3f}")
    assert metrics["scored_events"] > 0.8 * len(log.events)
    assert metrics["hit@10"] > 1.5 * baseline
    assert metrics["model_version"] > 0


def test_one_recommendation_per_touched_user_after_their_newest_event(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    catalog = Catalog(synthetic_log.items)
    pipeline = Pipeline(make_settings(retrieval={"k": 5}), tiny_encoder, catalog, clock=lambda: 1234.5)
    batch = [Event("a", "1", "view", 100), Event("b", "2", "view", 150), Event("a", "3", "cart", 200)]
    result = pipeline.process(batch)
    by_user = {rec.user_id: rec for rec in result.recommendations}
    assert set(by_user) == {"a", "b"} and result.added == 3
    rec = by_user["a"]
    assert rec.event_time == 200 and rec.produced_at == 1_234_500 and rec.model_version == 0
    assert len(rec.items) == 5 and not {"1", "3"} & {i.item_id for i in rec.items}  # seen items excluded
    assert rec.text.startswith("Recommended for you: " + rec.items[0].title)
    assert all(i.reason.startswith("because you ") for i in rec.items)
    assert Recommendation.from_msgpack(rec.to_msgpack()) == rec
    # the second batch trains on the windows as they were before it
    result = pipeline.process([Event("a", "4", "view", 300)])
    assert result.examples == 1 and pipeline.head.version == 1 and result.recommendations[0].model_version == 1


def test_duplicates_and_late_events_are_not_learned_twice(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    pipeline = Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))
    pipeline.process([Event("a", "1", "view", 10_000_000, "e1")])
    result = pipeline.process([Event("a", "1", "view", 10_000_000, "e1"), Event("a", "2", "view", 1, "e2")])
    assert (result.duplicates, result.too_late, result.added, result.examples) == (1, 1, 0, 0)
    assert result.recommendations == []


def test_a_scorer_serves_without_learning_and_a_trainer_learns_without_serving(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    """``kafka.role`` scaled out: scorers pass ``learn=False``, the trainer ``serve=False``."""
    first, second = synthetic_log.events[:64], synthetic_log.events[64:128]
    scorer = Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))
    scorer.process(first, learn=False)
    head = {name: tensor.clone() for name, tensor in scorer.head.model.state_dict().items()}
    result = scorer.process(second, learn=False)
    assert result.recommendations and result.examples == 0 and scorer.head.version == 0
    assert all(torch.equal(head[name], tensor) for name, tensor in scorer.head.model.state_dict().items())
    assert scorer.cooccurrence is not None and int(scorer.cooccurrence.interactions(len(scorer.catalog)).sum()) == 0
    assert scorer.windows.window(second[-1].user_id)[-1] == second[-1]  # its users' windows move on

    trainer = Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))
    trainer.process(first, serve=False)
    result = trainer.process(second, serve=False)
    assert result.recommendations == [] and result.examples > 0 and trainer.head.version == 1  # first: no windows
    assert trainer.cooccurrence is not None and int(trainer.cooccurrence.interactions(len(trainer.catalog)).sum()) > 0


def test_new_items_added_while_running_are_recommendable(
    make_settings: MakeSettings, tiny_encoder: HFEncoder
) -> None:
    catalog = Catalog([Item("1", "Mini Kite 1", "Toys")])
    pipeline = Pipeline(make_settings(), tiny_encoder, catalog)
    pipeline.process([Event("a", "1", "view", 1)])
    assert pipeline.add_items([Item("2", "Giant Robot 2", "Toys")]) == 1
    rec = pipeline.process([Event("b", "1", "view", 2)]).recommendations[0]
    assert [i.item_id for i in rec.items] == ["2"]
    assert rec.items[0].title == "Giant Robot 2 (Toys)"


def test_checkpoint_restores_the_same_recommendations(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog, tmp_path: Path
) -> None:
    settings = make_settings()
    first = Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items))
    replay(first, synthetic_log.events[:600], progress=False)
    first.save(tmp_path)
    second = Pipeline(settings, tiny_encoder, Catalog(list(reversed(synthetic_log.items))))
    assert second.load(tmp_path) and second.head.version == first.head.version
    assert torch.equal(second.ranker.weights, first.ranker.weights)
    assert second.ranker.observed == first.ranker.observed > 0
    users = sorted(first.windows.users())[:5]
    for a, b in zip(first.recommend(users), second.recommend(users), strict=True):
        assert [i.item_id for i in a.items] == [i.item_id for i in b.items]
        # rows are summed in another order after the remap: equal up to float rounding
        assert [i.score for i in a.items] == pytest.approx([i.score for i in b.items], abs=1e-3)


def test_users_can_be_dropped_and_restored_from_a_snapshot(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    pipeline = Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))
    pipeline.process(synthetic_log.events[:50])
    user = synthetic_log.events[0].user_id
    text = pipeline.window_text(user)
    blob = pipeline.windows.snapshot([user])
    pipeline.drop_users([user])
    assert user not in pipeline.windows and pipeline.recommend([user]) == []
    assert pipeline.restore_users(blob) == 1 and pipeline.window_text(user) == text
    assert pipeline.recommend([user])[0].user_id == user
    assert torch.is_tensor(pipeline._window_vectors[user])


def test_the_ranker_scores_a_batch_before_the_cooccurrence_learns_it(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))
    pipeline.process([Event("a", "1", "view", 1), Event("b", "2", "view", 1)])
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    observe = pipeline.ranker.observe
    monkeypatch.setattr(pipeline.ranker, "observe", lambda features, targets, excluded: (
        seen.append((features[pipeline.ranker.features.index("cooccurrence")], targets.clone())),
        observe(features, targets, excluded)))
    # "1" then "3" and "2" then "3" never co-occurred before this batch
    pipeline.process([Event("a", "3", "view", 2), Event("b", "3", "view", 2)])
    [(cooc, targets)] = seen
    three = pipeline.catalog.index_of("3")
    assert targets.tolist() == [three, three] and cooc[:, three].tolist() == [0.0, 0.0]
    assert pipeline.cooccurrence is not None
    assert pipeline.cooccurrence.matrix[pipeline.catalog.index_of("1"), three] == 1  # learned after
    assert pipeline.ranker.observed == 2


def test_without_cooccurrence_the_head_alone_ranks(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    pipeline = Pipeline(make_settings(head={"cooccurrence_history": 0}), tiny_encoder, Catalog(synthetic_log.items))
    result = replay(pipeline, synthetic_log.events[:300], progress=False)
    assert pipeline.cooccurrence is None and pipeline.ranker.features == ["head"] and result["hit@10"] > 0


def test_cooccurrence_settings_reach_the_index(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    head = {"cooccurrence_history": 7, "cooccurrence_decay": 0.6, "cooccurrence_alpha": 0.8}
    pipeline = Pipeline(make_settings(head=head), tiny_encoder, Catalog(synthetic_log.items))
    index = pipeline.cooccurrence
    assert index is not None and (index.history, index.decay, index.alpha) == (7, 0.6, 0.8)


def test_the_cold_boost_brings_cold_items_forward_and_keeps_the_order_of_the_rest(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog, tmp_path: Path
) -> None:
    plain = Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))
    replay(plain, synthetic_log.events[:600], progress=False)
    plain.save(tmp_path)
    boosted = Pipeline(make_settings(retrieval={"cold_boost": 2.0}), tiny_encoder, Catalog(synthetic_log.items))
    assert boosted.load(tmp_path)
    assert plain.cooccurrence is not None
    counts = plain.cooccurrence.interactions(len(plain.catalog))
    cold = {plain.catalog.ids[i] for i in range(len(plain.catalog)) if counts[i] < 5}
    assert 0 < len(cold) < len(plain.catalog)
    users = sorted(plain.windows.users())
    before = [[i.item_id for i in r.items] for r in plain.recommend(users)]
    after = [[i.item_id for i in r.items] for r in boosted.recommend(users)]
    share = [sum(i in cold for items in lists for i in items) for lists in (before, after)]
    assert share[1] > 1.2 * share[0]  # 96 against 67 when written
    for a, b in zip(before, after, strict=True):
        warm_b = [i for i in b if i not in cold]
        assert warm_b == [i for i in a if i not in cold][: len(warm_b)]  # warm items only move down
    # a batch reports how many of the items it published were cold (what Prometheus counts)
    result = boosted.process([Event(users[0], synthetic_log.items[0].item_id, "view", 10**13)])
    assert boosted.cooccurrence is not None
    after_batch = boosted.cooccurrence.interactions(len(boosted.catalog))  # as published
    published = [i.item_id for rec in result.recommendations for i in rec.items]
    assert result.cold_items == sum(int(after_batch[boosted.catalog.index_of(i)] < 5) for i in published) > 0


def test_the_new_item_rows_score_only_the_items_of_their_stage(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    pipeline = Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items))
    replay(pipeline, synthetic_log.events[:150], progress=False)
    assert pipeline.ranker.features[-8:] == ["items_new", "items_cold", "head_new", "head_cold", "text_new",
                                             "text_cold", "neighbours_new", "neighbours_cold"]
    assert pipeline.cooccurrence is not None
    counts = pipeline.cooccurrence.interactions(len(pipeline.catalog)).tolist()
    new = {pipeline.catalog.ids[i] for i, c in enumerate(counts) if c == 0}
    cold = {pipeline.catalog.ids[i] for i, c in enumerate(counts) if 0 < c < 5}
    assert len(new) >= 10 and len(cold) >= 10
    users = sorted(pipeline.windows.users())[:20]

    def lists(**weights: float) -> list[set[str]]:
        with torch.no_grad():
            pipeline.ranker.weights.copy_(torch.tensor([weights.get(f, 0.0) for f in pipeline.ranker.features]))
        return [{i.item_id for i in r.items} for r in pipeline.recommend(users)]

    assert all(items <= new for items in lists(items_new=1.0))  # an offset for items nobody has taken
    assert all(items <= cold for items in lists(items_cold=1.0))
    # the head's and the text's rows reach only their stage: their best items come from it
    for feature, stage in [("head_new", new), ("text_new", new), ("neighbours_new", new), ("head_cold", cold),
                           ("text_cold", cold), ("neighbours_cold", cold)]:
        assert sum(len(items & stage) for items in lists(**{feature: 1.0})) > 0.8 * 10 * len(users), feature
    plain = Pipeline(make_settings(head={"ranker_new_items": False}), tiny_encoder, Catalog(synthetic_log.items))
    assert plain.ranker.features == pipeline.ranker.features[:-8]
    ids_only = Pipeline(make_settings(head={"text_features": False}), tiny_encoder, Catalog(synthetic_log.items))
    assert ids_only.ranker.features[-4:] == ["items_new", "items_cold", "head_new", "head_cold"]
    no_neighbours = Pipeline(make_settings(head={"ranker_text_neighbours": 0}), tiny_encoder,
                             Catalog(synthetic_log.items))
    assert no_neighbours.ranker.features == pipeline.ranker.features[:-2] and no_neighbours.neighbours is None


def test_an_item_nobody_has_taken_inherits_the_cooccurrence_of_the_item_it_reads_like(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    pipeline = Pipeline(make_settings(head={"ranker_text_neighbours": 1}), tiny_encoder,
                        Catalog(synthetic_log.items))
    replay(pipeline, synthetic_log.events[:300], progress=False)
    assert pipeline.cooccurrence is not None
    user = sorted(pipeline.windows.users())[0]
    recent = torch.tensor([pipeline._positive_recent(user)])
    cooccurrence = pipeline.cooccurrence.scores(recent, len(pipeline.catalog))[0]
    liked = pipeline.catalog.get(pipeline.catalog.ids[int(cooccurrence.argmax())])  # what the user's items go with
    assert liked is not None and float(cooccurrence.max()) > 0
    pipeline.add_items([Item("sequel", liked.title, liked.category, liked.attributes)])  # reads the same, untaken
    with torch.no_grad():
        pipeline.ranker.weights.copy_(torch.tensor([float(f == "neighbours_new") for f in pipeline.ranker.features]))
    assert pipeline.recommend([user])[0].items[0].item_id == "sequel"


def test_idle_users_are_evicted_in_the_batch_path(make_settings: MakeSettings, tiny_encoder: HFEncoder) -> None:
    log = generate(n_users=3, n_items=20, seed=1)
    pipeline = Pipeline(make_settings(window={"idle_ttl_seconds": 3600}), tiny_encoder, Catalog(log.items))
    hour = 3_600_000
    first = pipeline.process([Event("old", "1", "view", 0), Event("fresh", "2", "view", hour // 2)])
    assert first.evicted == [] and {r.user_id for r in first.recommendations} == {"old", "fresh"}
    later = pipeline.process([Event("new", "3", "view", 2 * hour)])
    assert sorted(later.evicted) == ["fresh", "old"]  # both idle for over an hour of event time
    assert list(pipeline.windows.users()) == ["new"] and pipeline.windows.stats.evicted_users == 2
    assert pipeline.windows.take_evicted() == []  # handed out once
    back = pipeline.process([Event("old", "4", "view", 2 * hour + 1)])
    assert back.evicted == [] and [e.item_id for e in pipeline.windows.window("old")] == ["4"]  # a fresh start
