"""Prometheus metrics, namespace ``streamrec``, base units in the names.

Labels are ``topic``, ``partition``, ``stage`` (and ``reason``/``signal`` for the two
counters that need them) only: never user or item ids, so cardinality stays bounded.
Every :class:`Metrics` owns its registry, so tests and several pipelines in one process
never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r, ns = self.registry, "streamrec"
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        self.events_consumed = Counter("events_consumed", "Behaviour events consumed.",
                                       ["topic", "partition"], namespace=ns, registry=r)
        self.recommendations_produced = Counter("recommendations_produced", "Recommendations published.",
                                                ["topic"], namespace=ns, registry=r)
        self.items_recommended = Counter("items_recommended", "Items published in recommendations.",
                                         namespace=ns, registry=r)
        self.cold_items_recommended = Counter(
            "cold_items_recommended", "Items published in recommendations while cold (fewer than "
            "retrieval.cold_below interactions); over items_recommended: the share new items get.",
            namespace=ns, registry=r)
        self.bad_messages = Counter("bad_messages", "Invalid events, by reason.", ["reason"],
                                    namespace=ns, registry=r)
        self.dead_lettered = Counter("dead_lettered", "Messages written to the dead-letter topic.", ["topic"],
                                     namespace=ns, registry=r)
        self.evictions = Counter("evictions", "Users evicted from memory (LRU cap or idle TTL).",
                                 namespace=ns, registry=r)
        self.users_forgotten = Counter("users_forgotten", "Users forgotten on request whose window was held here.",
                                       namespace=ns, registry=r)
        self.checkpoints = Counter("checkpoints", "Head checkpoints written.", namespace=ns, registry=r)
        self.duplicates = Counter("duplicate_events", "Events dropped as duplicates (same event_id).",
                                  namespace=ns, registry=r)
        self.late_events = Counter("late_events", "Events dropped as later than max_lateness.",
                                   namespace=ns, registry=r)
        self.drift_detected = Counter("drift_detected", "Drifts detected by ADWIN, by watched signal.",
                                      ["signal"], namespace=ns, registry=r)
        self.event_to_recommendation = Histogram(
            "event_to_recommendation_seconds",
            "Latency to the published recommendation, from the event's timestamp (stage=event_time) "
            "or from when it was consumed (stage=consume_time).",
            ["stage"], buckets=LATENCY_BUCKETS, namespace=ns, registry=r)
        self.stage_seconds = Histogram("stage_seconds", "Time per micro-batch in each stage (encode, train, rank).",
                                       ["stage"], buckets=STAGE_BUCKETS, namespace=ns, registry=r)
        self.batch_size = Histogram("batch_size", "Events per micro-batch.", buckets=BATCH_BUCKETS,
                                    namespace=ns, registry=r)
        self.consumer_lag = Gauge("consumer_lag", "Messages behind the partition end (librdkafka statistics).",
                                  ["topic", "partition"], namespace=ns, registry=r)
        self.partition_assigned = Gauge("partition_assigned", "1 for each input partition this instance holds "
                                        "(a revoked or lost one's series is removed).", ["topic", "partition"],
                                        namespace=ns, registry=r)
        self.partition_changes = Counter("partition_changes", "Input partitions assigned, revoked or lost "
                                         "(change) in rebalances.", ["topic", "change"], namespace=ns, registry=r)
        self.dead_letter_ratio = Gauge("dead_letter_ratio", "Share of the partition's last 200 messages that "
                                       "were dead-lettered (1: every message rejected).", ["topic", "partition"],
                                       namespace=ns, registry=r)
        self.candidates = Counter("candidates", "Candidates contributed by each source (retrieval.mode "
                                  "candidates), after de-duplication.", ["source"], namespace=ns, registry=r)
        self.candidate_recall = Gauge("candidate_recall", "Share of recent positive events whose item was "
                                      "among the user's candidates (decayed over about the last quality_window "
                                      "events): the ceiling of the final hit rate; NaN until measured (always, "
                                      "when the catalogue is ranked whole).", namespace=ns, registry=r)
        self.candidate_recall.set(float("nan"))
        self.users_in_memory = Gauge("users_in_memory", "User windows held in memory.", namespace=ns, registry=r)
        self.kv_cache_bytes = Gauge("kv_cache_bytes", "Bytes held by per-user encoder KV caches.",
                                    namespace=ns, registry=r)
        self.model_version = Gauge("model_version", "Version of the scoring head (one per update).",
                                   namespace=ns, registry=r)
        self.model_snapshots = Counter("model_snapshots", "Model snapshots published (trainer) or loaded "
                                       "(scorer) through the model topic.", ["action"], namespace=ns, registry=r)
        self.model_bytes = Counter("model_bytes", "Bytes of model snapshots written to or read from the model "
                                   "topic.", ["direction"], namespace=ns, registry=r)
        self.model_delay = Histogram("model_delay_seconds", "Scorer: from an event (its Kafka timestamp) to this "
                                     "instance serving a model that learned it, for the oldest event new in each "
                                     "snapshot loaded.", buckets=LATENCY_BUCKETS, namespace=ns, registry=r)
        self.model_loss = Gauge("model_loss", "Training loss of the last head update.", namespace=ns, registry=r)
        self.ranker_weight = Gauge("ranker_weight", "Weight the final ranker gives each standardised signal.",
                                   ["feature"], namespace=ns, registry=r)
        self.online_hit = Gauge("online_hit_at_10", "Prequential hit@10 over the last window of scored events.",
                                namespace=ns, registry=r)
        self.online_ndcg = Gauge("online_ndcg_at_10", "Prequential ndcg@10 over the last window of scored events.",
                                 namespace=ns, registry=r)
        self.ready = Gauge("ready", "1 when /readyz answers 200 (assigned, caught up, broker reachable).", namespace=ns,
                           registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
