import math
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamrec.catalog import Catalog
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.endpoints import Endpoints, parse_address
from streamrec.errors import ConfigError
from streamrec.metrics import Metrics
from streamrec.monitoring import Telemetry
from streamrec.pipeline import Pipeline
from streamrec.replay import replay
from streamrec.synthetic import SyntheticLog

EXPECTED = {
    "streamrec_events_consumed": ("counter", {"topic", "partition"}),
    "streamrec_recommendations_produced": ("counter", {"topic"}),
    "streamrec_items_recommended": ("counter", set()),
    "streamrec_cold_items_recommended": ("counter", set()),
    "streamrec_bad_messages": ("counter", {"reason"}),
    "streamrec_users_forgotten": ("counter", set()),
    "streamrec_dead_lettered": ("counter", {"topic"}),
    "streamrec_evictions": ("counter", set()),
    "streamrec_checkpoints": ("counter", set()),
    "streamrec_drift_detected": ("counter", {"signal"}),
    "streamrec_event_to_recommendation_seconds": ("histogram", {"stage"}),
    "streamrec_stage_seconds": ("histogram", {"stage"}),
    "streamrec_batch_size": ("histogram", set()),
    "streamrec_consumer_lag": ("gauge", {"topic", "partition"}),
    "streamrec_dead_letter_ratio": ("gauge", {"topic", "partition"}),
    "streamrec_partition_assigned": ("gauge", {"topic", "partition"}),
    "streamrec_partition_changes": ("counter", {"topic", "change"}),
    "streamrec_candidates": ("counter", {"source"}),
    "streamrec_candidate_recall": ("gauge", set()),
    "streamrec_users_in_memory": ("gauge", set()),
    "streamrec_kv_cache_bytes": ("gauge", set()),
    "streamrec_model_version": ("gauge", set()),
    "streamrec_model_snapshots": ("counter", {"action"}),
    "streamrec_model_bytes": ("counter", {"direction"}),
    "streamrec_model_delay_seconds": ("histogram", set()),
    "streamrec_model_loss": ("gauge", set()),
    "streamrec_ranker_weight": ("gauge", {"feature"}),
    "streamrec_online_hit_at_10": ("gauge", set()),
    "streamrec_online_ndcg_at_10": ("gauge", set()),
}


def test_exposition_after_a_short_replay_has_names_types_and_label_sets(
    make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    settings = make_settings()
    pipeline = Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items))
    telemetry = Telemetry(settings)
    telemetry.metrics.bad_messages.labels(reason="schema").inc()
    replay(pipeline, synthetic_log.events[:400], progress=False, telemetry=telemetry)
    families = {f.name: f for f in text_string_to_metric_families(telemetry.metrics.exposition().decode())}
    for name, (kind, labels) in EXPECTED.items():
        assert families[name].type == kind, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"le"} <= labels, (name, sample.labels)
            assert not {"user_id", "item_id", "user", "item"} & set(sample.labels)
    values = {s.name: s.value for f in families.values() for s in f.samples if not s.labels}
    assert values["streamrec_model_version"] == pipeline.head.version > 0
    assert values["streamrec_users_in_memory"] == len(pipeline.windows)
    assert 0 < values["streamrec_online_hit_at_10"] <= 1
    assert values["streamrec_batch_size_count"] == len(range(0, 400, settings.batch.max_size))
    published = families["streamrec_recommendations_produced"].samples[0].value
    assert published < values["streamrec_items_recommended_total"] <= published * settings.retrieval.k
    assert 0 < values["streamrec_cold_items_recommended_total"] < values["streamrec_items_recommended_total"]
    consumed = families["streamrec_events_consumed"].samples[0]
    assert consumed.value == 400 and consumed.labels == {"topic": "replay", "partition": "0"}
    stages = {s.labels["stage"] for s in families["streamrec_stage_seconds"].samples}
    assert stages == {"encode", "train", "rank"}
    weights = {s.labels["feature"]: s.value for s in families["streamrec_ranker_weight"].samples}
    assert weights == dict(zip(pipeline.ranker.features, pipeline.ranker.weights.tolist(), strict=True))
    assert set(weights) == {"head", "cooccurrence", "cooccurrence_recent", "popularity", "text",
                            "items_new", "items_cold", "head_new", "head_cold", "text_new", "text_cold",
                            "neighbours_new", "neighbours_cold"}
    assert "process_resident_memory_bytes" in families


def test_endpoints_serve_metrics_health_and_readiness() -> None:
    ready, alive = [False], [True]
    endpoints = Endpoints("127.0.0.1:0", Metrics(), ready=lambda: (ready[0], "catching up"),
                          alive=lambda: (alive[0], "ok" if alive[0] else "the loop is stuck")).start()
    base = f"http://127.0.0.1:{endpoints.port}"
    try:
        with urllib.request.urlopen(f"{base}/metrics") as response:
            assert b"streamrec_model_version" in response.read()
        with urllib.request.urlopen(f"{base}/healthz") as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/readyz")
        assert info.value.code == 503 and info.value.read() == b"catching up\n"
        alive[0] = False
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/healthz")
        assert info.value.code == 503 and info.value.read() == b"the loop is stuck\n"
        ready[0] = True
        with urllib.request.urlopen(f"{base}/readyz") as response:
            assert response.status == 200
    finally:
        endpoints.stop()


def test_default_bind_address_is_loopback() -> None:
    assert Settings.model_fields["metrics_address"].default.startswith("127.0.0.1:")
    assert parse_address(":9108") == ("127.0.0.1", 9108)
    with pytest.raises(ConfigError, match="host:port"):
        parse_address("localhost")


def test_every_metric_the_grafana_dashboard_queries_exists() -> None:
    import json
    import re
    from pathlib import Path

    dashboard = Path(__file__).resolve().parents[1] / "docker" / "grafana" / "dashboards" / "streamrec.json"
    exprs = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p.get("targets", [])]
    queried = {re.sub(r"_(bucket|sum|count|total)$", "", name)
               for expr in exprs for name in re.findall(r"streamrec_[a-z0-9_]+", expr)}
    assert queried and queried <= set(EXPECTED), queried - set(EXPECTED)
    assert "streamrec_ranker_weight" in queried


def test_kv_cache_gauge_reads_the_window_encoders_bytes(
    make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    settings = make_settings(encoder={"mode": "incremental"})
    pipeline = Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items))
    telemetry = Telemetry(settings)
    replay(pipeline, synthetic_log.events[:200], progress=False, telemetry=telemetry)
    held = pipeline.window_encoder.cache_bytes
    assert held > 0
    assert telemetry.metrics.kv_cache_bytes._value.get() == held


def test_evictions_count_idle_users(
    make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    """window.idle_ttl_seconds evicts in the batch path, and the counter shows it."""
    settings = make_settings(window={"idle_ttl_seconds": 3600})
    pipeline = Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items))
    telemetry = Telemetry(settings)
    events = synthetic_log.events[:300]
    replay(pipeline, events, progress=False, telemetry=telemetry)
    newest = {e.user_id: e.timestamp for e in events}
    cutoff = max(newest.values()) - 3600 * 1000
    assert pipeline.windows.stats.evicted_users >= sum(t < cutoff for t in newest.values()) > 0
    assert telemetry.metrics.evictions._value.get() == pipeline.windows.stats.evicted_users


def test_candidate_metrics_count_the_sources_and_the_stages_recall(
    make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog
) -> None:
    full_settings = make_settings(retrieval={"mode": "full"})
    full = Telemetry(full_settings)
    replay(Pipeline(full_settings, tiny_encoder, Catalog(synthetic_log.items)), synthetic_log.events[:100],
           progress=False, telemetry=full)
    assert math.isnan(full.metrics.candidate_recall._value.get())  # no candidate stage: not measured, not 0
    settings = make_settings(retrieval={"mode": "candidates", "candidates_cooccurrence": 12, "candidates_text": 8})
    pipeline = Pipeline(settings, tiny_encoder, Catalog(synthetic_log.items))
    telemetry = Telemetry(settings)
    replay(pipeline, synthetic_log.events[:400], progress=False, telemetry=telemetry)
    stats = pipeline.scorer.candidates.stats  # type: ignore[union-attr]
    families = {f.name: f for f in text_string_to_metric_families(telemetry.metrics.exposition().decode())}
    counted = {s.labels["source"]: s.value for s in families["streamrec_candidates"].samples
               if s.name.endswith("_total")}
    assert counted == {source: float(n) for source, n in stats.contributed.items()} and counted["cooccurrence"] > 0
    recall = telemetry.metrics.candidate_recall._value.get()
    assert 0 < recall <= 1 and abs(recall - stats.recall) < 0.1
