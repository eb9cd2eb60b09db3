from collections.abc import Callable

import pytest
import torch

from harness.pipeline_model import CachedEncoder, PipelineModel, ZeroEncoder
from harness.protocols import run_prequential
from streamrec.catalog import Catalog
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.errors import ConfigError
from streamrec.events import ActionVocabulary
from streamrec.pipeline import Pipeline
from streamrec.replay import replay
from streamrec.synthetic import SyntheticLog

MakeSettings = Callable[..., Settings]


def test_harness_scores_the_pipeline_exactly_as_the_replay_runner(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    settings = make_settings(batch={"max_size": 16}, head={"replay_sample": 32, "steps_per_batch": 1})
    events = synthetic_log.events[:160]
    replayed = replay(Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items)), events, progress=False)
    model = PipelineModel(Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items)))
    vocab = ActionVocabulary.for_domain(settings.domain)
    result = run_prequential(events, [model], settings.batch.max_size, 10,
                             [i.item_id for i in synthetic_log.items], lambda e: vocab.is_positive(e.action))
    ours = result.metrics()["streamrec"]
    assert result.scored == replayed["scored_events"] > 60
    for metric in ("hit@10", "ndcg@10", "mrr@10", "coverage@10"):
        assert ours.get(metric, ours["all"].get(metric)) == pytest.approx(replayed[metric], abs=1e-12)
    assert model.exclusion_mismatches == 0


def test_ids_only_head_ranks_the_same_with_zero_vectors(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    settings = make_settings(head={"text_features": False, "replay_sample": 32}, batch={"max_size": 16})
    real = PipelineModel(Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items)))
    zero = PipelineModel(Pipeline(settings, ZeroEncoder(tiny_encoder.dim), Catalog(synthetic_log.items)))
    events = synthetic_log.events[:96]
    for start in range(0, len(events), 16):
        batch = events[start:start + 16]
        users = sorted({e.user_id for e in batch})
        real.learn(batch)
        zero.learn(batch)
        assert real.recommend(users, 10, [()] * len(users)) == zero.recommend(users, 10, [()] * len(users))


def test_adapter_ranks_users_outside_the_batch_and_enforces_exclusions(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    model = PipelineModel(Pipeline(make_settings(), tiny_encoder, Catalog(synthetic_log.items)))
    first = synthetic_log.events[:40]
    old_user = first[0].user_id
    model.learn(first)
    model.learn([e for e in synthetic_log.events[40:200] if e.user_id != old_user][:20])
    (ranked,) = model.recommend([old_user], 10, [()])
    assert len(ranked) == 10
    (kept,) = model.recommend([old_user], 10, [{ranked[0]}])
    assert kept == ranked[1:] and model.exclusion_mismatches == 1
    with pytest.raises(ConfigError, match=r"retrieval\.k"):
        model.recommend([old_user], 20, [()])


def test_cached_encoder_returns_the_inner_vectors_and_encodes_each_text_once(tiny_encoder: HFEncoder) -> None:
    cached = CachedEncoder(tiny_encoder, max_entries=2)
    texts = ["viewed Heat", "viewed Ran", "viewed Heat"]
    assert torch.allclose(cached.encode(texts), tiny_encoder.encode(texts), atol=1e-5)
    assert (cached.misses, cached.hits) == (2, 1)
    cached.encode(["viewed Up"])  # evicts the least recently used text ("viewed Ran")
    cached.encode(["viewed Ran"])
    assert cached.misses == 4 and cached.encode([]).shape == (0, tiny_encoder.dim)
