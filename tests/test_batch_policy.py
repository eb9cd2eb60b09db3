"""The adaptive micro-batch policy: small batches when traffic is light, large under load."""

from __future__ import annotations

import pytest

from streamrec.batching import AdaptiveBatchPolicy, MicroBatcher


def feed(policy: AdaptiveBatchPolicy, now: list[float], gap: float, n: int) -> None:
    for _ in range(n):
        now[0] += gap
        policy.observe_arrivals(1)


def test_the_cost_model_is_fitted_from_observed_batches() -> None:
    policy = AdaptiveBatchPolicy()
    for size in (4, 64, 16, 128, 8):
        policy.observe_batch(size, 0.050 + 0.002 * size)
    assert policy.overhead == pytest.approx(0.050, rel=1e-6)
    assert policy.per_event == pytest.approx(0.002, rel=1e-6)


def test_batch_size_follows_the_load_and_stays_within_bounds() -> None:
    now = [0.0]
    policy = AdaptiveBatchPolicy(min_size=1, max_size=200, max_wait_ms=100, clock=lambda: now[0])
    for size in (1, 100):
        policy.observe_batch(size, 0.050 + 0.002 * size)  # 50 ms per batch + 2 ms per event
    feed(policy, now, 1.0, 30)  # 1 event/s
    assert (policy.size, policy.wait_ms) == (1, 0.0)  # close at once: latency is all that matters
    feed(policy, now, 0.005, 200)  # 200 events/s: 40% busy per event, plus 50 ms per batch
    # the smallest batch that keeps up, rate * overhead / (1 - rate * per_event) = 16.7, with 1.5x headroom
    assert policy.size == 25 and policy.wait_ms == pytest.approx(100.0)  # 125 ms to fill, capped
    feed(policy, now, 0.001, 200)  # 1000 events/s: more than it can ever keep up with
    assert policy.size == 200
    feed(policy, now, 1.0, 30)  # the burst is over
    assert policy.size == 1


def test_apply_sets_the_next_batch_of_a_micro_batcher() -> None:
    now = [0.0]
    policy = AdaptiveBatchPolicy(max_size=64, max_wait_ms=80, clock=lambda: now[0])
    batcher: MicroBatcher[str] = MicroBatcher(max_size=32, max_wait_ms=200, clock=lambda: now[0])
    policy.observe_batch(1, 0.01)
    policy.observe_batch(50, 0.06)
    feed(policy, now, 0.002, 100)
    policy.apply(batcher)
    assert batcher.max_size == policy.size > 1 and batcher.max_wait == pytest.approx(policy.wait_ms / 1000)
    closed = [batcher.add(str(i)) for i in range(policy.size)]
    assert closed[-1] is not None and len(closed[-1]) == policy.size and not any(closed[:-1])
