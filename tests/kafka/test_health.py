"""What /healthz and /readyz answer, driven by a hand-advanced clock."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import KafkaError

from streamrec.errors import KafkaAuthError
from streamrec.kafka.health import Health
from streamrec.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _health(clock: Clock, metrics: Metrics | None = None) -> Health:
    health = Health(liveness_timeout_s=60, ready_lag=640, metrics=metrics, topic="events", clock=clock)
    health.assigned({0, 1})
    return health


def _stats(lags: dict[str, int], broker_state: str = "UP") -> str:
    return json.dumps({"brokers": {"127.0.0.1:9092/1": {"nodeid": 1, "state": broker_state}},
                       "topics": {"events": {"partitions": {key: {"consumer_lag": lag} for key, lag in lags.items()}}}})


def test_a_stuck_batch_fails_liveness_and_readiness() -> None:
    clock = Clock()
    health = _health(clock)
    health.batch_started()
    clock.now += 59
    health.tick()  # the loop turns while it waits for the batch
    assert health.alive() == (True, "ok") and health.ready()
    clock.now += 2
    alive, why = health.alive()
    assert not alive and "one batch has been in the pipeline for 61s" in why
    assert not health.ready() and health.why_not_ready() == why
    health.batch_finished()
    assert health.alive() == (True, "ok")


def test_a_loop_that_stops_turning_fails_liveness() -> None:
    clock = Clock()
    health = _health(clock)
    clock.now += 61
    assert health.alive() == (False, "the consumer loop has not turned for 61s")
    health.tick()
    assert health.alive()[0]


def test_a_long_restore_is_progress_not_a_hang() -> None:
    clock = Clock()
    health = _health(clock)
    with health.restoring():
        clock.now += 200  # the loop waits in the rebalance callback while the changelog is read
        assert health.alive() == (True, "restoring windows from the changelog") and not health.ready()
    assert health.alive() == (True, "ok")


def test_readiness_drops_while_the_broker_is_down_and_while_restoring() -> None:
    metrics = Metrics()
    health = _health(Clock(), metrics)
    assert health.readiness() == (True, "ready") and metrics.ready._value.get() == 1
    health.on_client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert health.readiness() == (False, "broker unreachable (1/1 brokers are down)")
    assert metrics.ready._value.get() == 0
    health.on_statistics(_stats({"0": 5}, broker_state="DOWN"))
    assert not health.ready()  # still down
    health.on_statistics(_stats({"0": 5}))  # a broker answers again
    assert health.ready()
    with health.restoring():
        assert health.readiness() == (False, "restoring windows from the changelog")
    assert health.ready()


def test_a_call_blocked_on_the_broker_drops_readiness() -> None:
    """A synchronous commit with the coordinator gone serves no callbacks for ~45 s, so the
    "all brokers down" error comes late: the wait itself says the broker is unreachable."""
    clock = Clock()
    health = _health(clock)
    with health.waiting_on_broker("the commit of a batch"):
        clock.now += 4
        assert health.ready()  # an ordinary commit
        clock.now += 2
        assert health.readiness() == (False, "broker unreachable (the commit of a batch has waited 6s for it)")
        assert health.alive() == (True, "ok")  # waiting on the broker is not a hang
    assert health.ready()


def test_readiness_waits_for_the_lag_and_an_assignment() -> None:
    health = _health(Clock())
    health.on_statistics(_stats({"0": 641, "1": 3}))
    assert health.readiness() == (False, "catching up: lag {0: 641}")
    health.on_statistics(_stats({"0": 640}))
    assert health.ready()
    health.assigned(set())
    assert health.readiness() == (False, "no partitions assigned")


def test_lag_is_exported_for_held_partitions_only() -> None:
    metrics = Metrics()
    health = _health(Clock(), metrics)
    health.on_statistics(_stats({"0": 7, "1": 9, "2": 4, "-1": 0}))  # 2 is not ours, -1 is librdkafka's
    exported = {s.labels["partition"]: s.value for s in metrics.consumer_lag.collect()[0].samples}
    assert exported == {"0": 7, "1": 9}
    health.assigned({0})  # partition 1 was revoked
    exported = {s.labels["partition"]: s.value for s in metrics.consumer_lag.collect()[0].samples}
    assert exported == {"0": 7} and health.lag == {0: 7}
    health.on_statistics(_stats({"0": 1, "1": 9}))  # librdkafka still reports the revoked partition
    assert {s.labels["partition"] for s in metrics.consumer_lag.collect()[0].samples} == {"0"}


def test_the_assignment_is_exported() -> None:
    metrics = Metrics()
    health = _health(Clock(), metrics)  # {0, 1} assigned

    def held() -> set[str]:
        return {s.labels["partition"] for s in metrics.partition_assigned.collect()[0].samples if s.value == 1}

    def changes() -> dict[str, float]:
        return {s.labels["change"]: s.value for s in metrics.partition_changes.collect()[0].samples
                if s.name.endswith("_total")}

    assert held() == {"0", "1"} and changes() == {"assigned": 2, "revoked": 0}
    health.assigned({0, 2})  # 1 revoked, 2 assigned
    assert held() == {"0", "2"} and changes() == {"assigned": 3, "revoked": 1}
    health.assigned(set(), lost=True)
    assert held() == set() and changes() == {"assigned": 3, "revoked": 1, "lost": 2}


def test_a_refused_login_or_a_missing_group_acl_raises_naming_the_group() -> None:
    health = Health(liveness_timeout_s=60, ready_lag=640, topic="events", group="recs")
    with pytest.raises(KafkaAuthError, match="not authorized to use consumer group 'recs'"):
        health.on_client_error(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    with pytest.raises(KafkaAuthError, match="authentication failed"):
        health.on_client_error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error"))
    health.on_client_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))  # an outage is waited out
    assert health.broker_problem() is not None
