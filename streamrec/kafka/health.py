"""What ``/healthz`` and ``/readyz`` answer for the Kafka service, and the consumer-lag gauge.

**Live** (``/healthz``): the service is making progress. It is not when the consumer loop has
not turned for ``kafka.liveness_timeout_seconds`` (a dead or blocked loop), or one batch has
been in the pipeline that long (a stuck worker). An orchestrator restarts a process that is not
live; a broker outage alone does not make it so (the loop keeps turning while it waits), nor
does a long restore of windows (it has its own timeout).

**Ready** (``/readyz``): live, partitions assigned, no restore of windows under way, the broker
reachable, and every assigned partition within ``READY_LAG_BATCHES`` batches of its end. The
broker counts as unreachable from librdkafka's "all brokers down" error until the next sign of
life (a statistics report with a broker up, a consumed message, a successful commit), and while
a call that waits on the broker (a flush, a synchronous commit, a transaction) has waited more
than ``BROKER_WAIT_S``: a synchronous commit with the coordinator gone blocks for about 45 s and
serves no callbacks meanwhile, so the "all brokers down" error would only arrive after it.

The consumer lag comes from librdkafka statistics (every ``kafka.statistics_interval_seconds``),
exported only for partitions this instance holds: a revoked partition's series is removed, so
a sum across instances counts each partition once.

**Giving up**: once the broker has been unreachable for ``kafka.broker_timeout_seconds`` (at
start, where :meth:`Health.wait_for_broker` retries with backoff, or running, checked each
time the loop turns) a :class:`~streamrec.kafka.clients.BrokerUnavailableError` ends the run
(exit code 4), so an orchestrator restarts the service; nothing uncommitted is lost by that.

>>> clock = [0.0]
>>> health = Health(liveness_timeout_s=10, ready_lag=100, clock=lambda: clock[0])
>>> health.assigned({0, 1}); health.tick()
>>> health.ready(), health.alive()
(True, (True, 'ok'))
>>> health.broker_down("all brokers down"); health.ready()
False
>>> health.broker_up(); clock[0] = 11.0; health.alive()
(False, 'the consumer loop has not turned for 11s')
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException

from streamrec.kafka.client_logs import LOGGER_NAME
from streamrec.kafka.clients import BrokerUnavailableError, KafkaServiceError
from streamrec.kafka.security import raise_on_auth
from streamrec.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

READY_LAG_BATCHES = 10  # /readyz: every assigned partition within this many batches of its end
BROKER_WAIT_S = 5.0  # /readyz: a call waiting on the broker longer than this means it is unreachable


class Health:
    """Liveness and readiness state, fed by the service's loop and librdkafka's callbacks."""

    def __init__(self, liveness_timeout_s: float, ready_lag: int, metrics: Metrics | None = None,
                 topic: str = "", broker_timeout_s: float | None = None, group: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.group = group  # the consumer group, named when an ACL for it is missing
        self.broker_timeout_s = broker_timeout_s
        self.liveness_timeout_s = liveness_timeout_s
        self.ready_lag = ready_lag
        self.metrics = metrics
        self.topic = topic
        self.clock = clock
        self.lag: dict[int, int] = {}  # assigned partition -> consumer_lag
        self._partitions: set[int] = set()
        self._last_tick = clock()
        self._batch_started: float | None = None
        self._restoring = 0
        self._broker_down: str | None = None
        self._broker_down_since: float | None = None
        self._waiting: tuple[str, float] | None = None  # (what, since) while a call waits on the broker
        self._lock = threading.Lock()  # the endpoints ask from their own threads

    # -- fed by the service --------------------------------------------------------------------

    def tick(self) -> None:
        """The consumer loop turned."""
        self._last_tick = self.clock()

    def turn(self) -> None:
        """The consumer loop turned (:meth:`tick`); raises once the broker is gone for too long."""
        self.tick()
        down = self.broker_down_for()
        if self.broker_timeout_s is not None and down > self.broker_timeout_s:
            raise BrokerUnavailableError(f"the broker has been unreachable for {down:.0f}s ({self._broker_down}), "
                                         f"more than kafka.broker_timeout_seconds={self.broker_timeout_s:g}")

    def broker_down_for(self) -> float:
        """Seconds since the broker became unreachable (0 while it answers)."""
        since = self._broker_down_since
        return 0.0 if since is None else self.clock() - since

    def wait_for_broker(self, call: Callable[[], T], stop: threading.Event) -> T:
        """``call`` (talking to the broker at start), retried with backoff while no broker answers."""
        delay = 0.5
        while True:
            try:
                with self.waiting_on_broker("the first metadata request"):  # a try may take ADMIN_TIMEOUT_S
                    result = call()
                self.broker_up()
                return result
            except KafkaException as exc:
                if exc.args[0].code() not in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT,
                                              KafkaError._ALL_BROKERS_DOWN):
                    raise
                self.broker_down(f"at start: {exc.args[0].str()}")
            self.turn()
            if stop.wait(delay):
                raise KafkaServiceError("stopped while waiting for the broker")
            delay = min(2 * delay, 10.0)

    def batch_started(self) -> None:
        self._batch_started = self.clock()

    def batch_finished(self) -> None:
        self._batch_started = None
        self.tick()

    @contextmanager
    def restoring(self) -> Iterator[None]:
        """Not ready while windows are restored from the changelog."""
        with self._lock:
            self._restoring += 1
        try:
            yield
        finally:
            with self._lock:
                self._restoring -= 1
            self.tick()

    @contextmanager
    def waiting_on_broker(self, what: str) -> Iterator[None]:
        """A call that blocks until the broker answers (``what`` names it in /readyz)."""
        self._waiting = (what, self.clock())
        try:
            yield
        finally:
            self._waiting = None

    def assigned(self, partitions: set[int], lost: bool = False) -> None:
        """The partitions this instance now holds (those gone were revoked, or ``lost``); their
        ``partition_assigned`` series follow, and lag series of the others are removed."""
        with self._lock:
            gained, gone = partitions - self._partitions, self._partitions - partitions
            self._partitions = set(partitions)
            lags = {p for p in gone if self.lag.pop(p, None) is not None}
        if self.metrics is None:
            return
        metrics = self.metrics
        for partition in gained:
            metrics.partition_assigned.labels(topic=self.topic, partition=str(partition)).set(1)
        for partition in gone:
            metrics.partition_assigned.remove(self.topic, str(partition))
            if partition in lags:
                metrics.consumer_lag.remove(self.topic, str(partition))
        metrics.partition_changes.labels(topic=self.topic, change="assigned").inc(len(gained))
        metrics.partition_changes.labels(topic=self.topic, change="lost" if lost else "revoked").inc(len(gone))

    def broker_down(self, why: str) -> None:
        if self._broker_down is None:
            log.warning("broker unreachable (%s): not ready until it answers again", why)
            self._broker_down_since = self.clock()
        self._broker_down = why

    def broker_up(self) -> None:
        if self._broker_down is not None:
            log.warning("broker reachable again")
        self._broker_down, self._broker_down_since = None, None

    def on_client_error(self, error: KafkaError) -> None:
        """librdkafka's error events (``error_cb``) of the group consumer and the producer: the producer's
        are served while a flush waits for deliveries, when the consumer is not polled. A refused login
        or a missing ACL raises :class:`~streamrec.errors.KafkaAuthError` out of that poll or flush."""
        raise_on_auth(error, "use one of the service's topics", self.group)
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.broker_down(error.str())
        elif error.code() != KafkaError._TRANSPORT:  # each failed connect is already a client log line
            logging.getLogger(LOGGER_NAME).warning("client error: %s", error.str())

    def on_statistics(self, stats_json: str) -> None:
        """librdkafka statistics: per-partition consumer lag, and whether any broker is up."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        brokers = stats.get("brokers", {}).values()
        if any(b.get("state") == "UP" and b.get("nodeid", -1) >= 0 for b in brokers):
            self.broker_up()
        partitions = stats.get("topics", {}).get(self.topic, {}).get("partitions", {})
        with self._lock:
            for key, partition in partitions.items():
                lag = int(partition.get("consumer_lag", -1))
                if key == "-1" or lag < 0 or int(key) not in self._partitions:  # UA, no position, not ours
                    continue
                self.lag[int(key)] = lag
                if self.metrics is not None:
                    self.metrics.consumer_lag.labels(topic=self.topic, partition=key).set(lag)

    # -- asked by the endpoints ----------------------------------------------------------------

    def broker_problem(self) -> str | None:
        """Why the broker counts as unreachable, or None."""
        if self._broker_down is not None:
            return self._broker_down
        waiting = self._waiting
        waited = self.clock() - waiting[1] if waiting is not None else 0.0
        if waiting is not None and waited > BROKER_WAIT_S:
            return f"{waiting[0]} has waited {waited:.0f}s for it"
        return None

    def alive(self) -> tuple[bool, str]:
        if self._restoring:  # progress of its own, bounded by the restore's timeout
            return True, "restoring windows from the changelog"
        now = self.clock()
        idle = now - self._last_tick
        started = self._batch_started
        if started is not None and now - started > self.liveness_timeout_s:
            return False, f"one batch has been in the pipeline for {now - started:.0f}s"
        if idle > self.liveness_timeout_s:
            return False, f"the consumer loop has not turned for {idle:.0f}s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        """What ``/readyz`` answers."""
        return self.ready(), self.why_not_ready()

    def ready(self) -> bool:
        with self._lock:
            ready = (self.alive()[0] and bool(self._partitions) and not self._restoring
                     and self.broker_problem() is None
                     and all(self.lag.get(p, 0) <= self.ready_lag for p in self._partitions))
        if self.metrics is not None:
            self.metrics.ready.set(1 if ready else 0)
        return ready

    def why_not_ready(self) -> str:
        alive, why = self.alive()
        if not alive:
            return why
        problem = self.broker_problem()
        if problem is not None:
            return f"broker unreachable ({problem})"
        if self._restoring:
            return "restoring windows from the changelog"
        if not self._partitions:
            return "no partitions assigned"
        behind = {p: lag for p, lag in self.lag.items() if lag > self.ready_lag}
        return f"catching up: lag {behind}" if behind else "ready"
