"""Live quality and drift: prequential hit@10/ndcg@10 over a sliding window, watched by ADWIN.

The online metrics use the replay's definition (:mod:`streamrec.prequential`): each event is
scored against the latest recommendation already published for its user. River's
``utils.Rolling`` keeps the sliding means; ``drift.ADWIN`` watches the per-event hit and the
training loss. A detected drift is counted, logged, and, when the response is ``boost_lr``,
raises the head's learning rate by ``lr_boost`` for ``boost_batches`` batches. Only
degradations count: a rising hit rate (the model learning) is not drift.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from streamrec.config import DriftSettings, Settings
from streamrec.events import ActionVocabulary, Event
from streamrec.metrics import Metrics
from streamrec.prequential import LatestRecommendations

if TYPE_CHECKING:
    from streamrec.head import OnlineHead
    from streamrec.pipeline import BatchResult, Pipeline

log = logging.getLogger(__name__)


class OnlineQuality:
    """Sliding-window prequential hit@k and ndcg@k from live traffic, bounded in users; the
    replay's scoring (:class:`~streamrec.prequential.LatestRecommendations`), rolling means."""

    def __init__(self, k: int = 10, window: int = 1000, max_users: int = 200_000) -> None:
        self.k = k
        from river import stats, utils  # imported here: river takes a second to import

        self._latest = LatestRecommendations(k, max_users)
        self.hit = utils.Rolling(stats.Mean, window_size=window)
        self.ndcg = utils.Rolling(stats.Mean, window_size=window)

    def observe(self, user_id: str, item_id: str) -> float | None:
        """Score an event before it is learned; None when the user has no recommendation yet."""
        gain = self._latest.gain(user_id, item_id)
        if gain is None:
            return None
        self.hit.update(gain.hit)
        self.ndcg.update(gain.ndcg)
        return gain.hit

    def values(self) -> tuple[float, float]:
        """The current sliding-window (hit@k, ndcg@k)."""
        return float(self.hit.get()), float(self.ndcg.get())  # type: ignore[operator]

    def publish(self, user_id: str, item_ids: Sequence[str]) -> None:
        self._latest.publish(user_id, item_ids)

    def forget(self, user_ids: Iterable[str]) -> None:
        self._latest.forget(user_ids)


class DriftMonitor:
    """ADWIN on the online hit rate and on the loss; counts, logs and optionally responds."""

    def __init__(self, settings: DriftSettings, metrics: Metrics | None = None) -> None:
        from river import drift

        self.settings = settings
        self.metrics = metrics
        self.detectors = {"hit_rate": drift.ADWIN(delta=settings.delta),
                          "loss": drift.ADWIN(delta=settings.delta)}
        self.detected: dict[str, int] = {"hit_rate": 0, "loss": 0}
        self._boost_left = 0

    def update(self, signal: str, value: float) -> bool:
        """Feed one value; True when a *degradation* is detected (hit rate down, loss up).

        ADWIN flags any change in the mean; an improvement (the model learning) is not drift.
        """
        detector = self.detectors[signal]
        before = detector.estimation
        detector.update(value)
        if not detector.drift_detected:
            return False
        worse = detector.estimation < before if signal == "hit_rate" else detector.estimation > before
        if not worse:
            return False
        self.detected[signal] += 1
        if self.metrics is not None:
            self.metrics.drift_detected.labels(signal=signal).inc()
        log.warning("drift detected in %s (now %.4f); response: %s", signal, detector.estimation,
                    self.settings.response)
        if self.settings.response == "boost_lr":
            self._boost_left = self.settings.boost_batches
        return True

    def after_batch(self, head: OnlineHead) -> None:
        """Apply or wind down the learning-rate boost; call once per micro-batch."""
        if self._boost_left > 0:
            head.lr_scale = self.settings.lr_boost
            self._boost_left -= 1
        else:
            head.lr_scale = 1.0


class Telemetry:
    """Feeds metrics, online quality and drift from each micro-batch; used by replay and Kafka.

    Call :meth:`before_batch` before the pipeline learns the batch (prequential scoring) and
    :meth:`after_batch` with its result.
    """

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.vocab = ActionVocabulary.for_domain(settings.domain, settings.actions)
        self.quality = OnlineQuality(window=settings.drift.quality_window, max_users=settings.window.max_users)
        self.drift = DriftMonitor(settings.drift, self.metrics)
        self._evictions_seen = 0
        self._recall_decay = 1.0 - 1.0 / settings.drift.quality_window  # per positive event
        self._recall = [0.0, 0.0]  # decayed (found, scored) of the candidate stage

    def before_batch(self, events: Sequence[Event]) -> None:
        for event in events:
            if self.vocab.is_positive(event.action):
                hit = self.quality.observe(event.user_id, event.item_id)
                if hit is not None:
                    self.drift.update("hit_rate", hit)
        hit, ndcg = self.quality.values()
        self.metrics.online_hit.set(hit)
        self.metrics.online_ndcg.set(ndcg)

    def forget(self, user_ids: Sequence[str], held: int) -> None:
        """Forget users' latest recommendations (:mod:`streamrec.forget`); ``held``: how many of
        them had a window here, counted in ``streamrec_users_forgotten_total``."""
        self.quality.forget(user_ids)
        self.metrics.users_forgotten.inc(held)

    def after_batch(self, pipeline: Pipeline, result: BatchResult, batch_size: int, topic: str,
                    consumed_at: float | None = None, event_time_latency: bool = True) -> None:
        """``consumed_at``: wall-clock seconds when the batch was consumed; a recommendation whose
        ``source`` says when its event was consumed (Kafka, epoch ms) uses that instead."""
        m = self.metrics
        m.batch_size.observe(batch_size)
        for stage, seconds in result.seconds.items():
            m.stage_seconds.labels(stage=stage).observe(seconds)
        m.recommendations_produced.labels(topic=topic).inc(len(result.recommendations))
        m.items_recommended.inc(sum(len(rec.items) for rec in result.recommendations))
        m.cold_items_recommended.inc(result.cold_items)
        m.duplicates.inc(result.duplicates)
        m.late_events.inc(result.too_late)
        for rec in result.recommendations:
            self.quality.publish(rec.user_id, [item.item_id for item in rec.items])
            if event_time_latency:
                m.event_to_recommendation.labels(stage="event_time").observe(
                    max(0.0, (rec.produced_at - rec.event_time) / 1000))
            consumed = rec.source.get("consumed_at", None) if rec.source else None
            consumed_s = consumed / 1000 if consumed is not None else consumed_at
            if consumed_s is not None:
                m.event_to_recommendation.labels(stage="consume_time").observe(
                    max(0.0, rec.produced_at / 1000 - consumed_s))
        for source, count in result.candidates.items():
            m.candidates.labels(source=source).inc(count)
        scored, found = result.candidate_targets
        if scored:
            decay = self._recall_decay ** scored
            self._recall = [self._recall[0] * decay + found, self._recall[1] * decay + scored]
            m.candidate_recall.set(self._recall[0] / self._recall[1])
        evicted = pipeline.windows.stats.evicted_users
        m.evictions.inc(evicted - self._evictions_seen)
        self._evictions_seen = evicted
        m.users_in_memory.set(len(pipeline.windows))
        m.kv_cache_bytes.set(pipeline.window_encoder.cache_bytes)
        m.model_version.set(pipeline.head.version)
        for feature, weight in pipeline.ranker.weights_by_feature().items():
            m.ranker_weight.labels(feature=feature).set(weight)
        if result.loss is not None:
            m.model_loss.set(result.loss)
            self.drift.update("loss", result.loss)
        self.drift.after_batch(pipeline.head)
