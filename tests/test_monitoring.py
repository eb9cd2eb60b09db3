import random
from collections.abc import Callable

import pytest

from streamrec.catalog import Catalog
from streamrec.config import DriftSettings, Settings
from streamrec.encoding import HFEncoder
from streamrec.head import OnlineHead
from streamrec.monitoring import DriftMonitor, OnlineQuality, Telemetry
from streamrec.pipeline import Pipeline
from streamrec.replay import replay
from streamrec.synthetic import generate


def drifts_in_replay(make_settings: Callable[..., Settings], encoder: HFEncoder, drift_at: float | None) -> int:
    log = generate(n_users=300, n_items=100, follow=0.9, drift_at=drift_at, seed=11)
    # The synthetic log thins out at its very end (few users still active, so batches hold
    # several events of one user and the hit rate sags); keep the steady part.
    events = log.events[: int(len(log.events) * 0.9)]
    settings = make_settings(batch={"max_size": 32})
    telemetry = Telemetry(settings)
    replay(Pipeline(settings, encoder, Catalog(log.items)), events, progress=False, telemetry=telemetry)
    return telemetry.drift.detected["hit_rate"]


@pytest.mark.slow  # over 30 s on 2 cores
def test_adwin_fires_on_an_abrupt_change_and_stays_quiet_when_stationary(
    make_settings: Callable[..., Settings], tiny_encoder: HFEncoder
) -> None:
    assert drifts_in_replay(make_settings, tiny_encoder, drift_at=None) == 0
    assert drifts_in_replay(make_settings, tiny_encoder, drift_at=0.5) >= 1


def test_improvement_is_not_drift_and_boost_response_raises_the_learning_rate() -> None:
    from streamrec.config import HeadSettings

    monitor = DriftMonitor(DriftSettings(response="boost_lr", lr_boost=4.0, boost_batches=2))
    rng = random.Random(0)
    rising = [float(rng.random() < 0.1) for _ in range(1000)] + [float(rng.random() < 0.6) for _ in range(1000)]
    assert not any(monitor.update("hit_rate", v) for v in rising)
    falling = [float(rng.random() < 0.05) for _ in range(1000)]
    assert any(monitor.update("hit_rate", v) for v in falling)
    head = OnlineHead(8, HeadSettings(dim=4))
    monitor.after_batch(head)
    assert head.lr_scale == 4.0
    monitor.after_batch(head)
    monitor.after_batch(head)
    assert head.lr_scale == 1.0


def test_online_quality_uses_the_replay_definition_over_a_sliding_window() -> None:
    quality = OnlineQuality(k=10, window=2, max_users=1)
    assert quality.observe("u", "a") is None
    quality.publish("u", ["a", "b"])
    assert quality.observe("u", "b") == 1.0
    assert quality.observe("u", "z") == 0.0
    assert quality.observe("u", "a") == 1.0
    hit, ndcg = quality.values()
    assert hit == 0.5 and ndcg == 0.5  # window of 2: a miss, then a hit at rank 0
    quality.publish("v", ["x"])  # max_users=1: u is forgotten
    assert quality.observe("u", "a") is None
