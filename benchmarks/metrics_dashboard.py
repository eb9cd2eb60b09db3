"""Render the operator's view of a real run as a PNG: what the Grafana dashboard shows.

Runs a replay of a synthetic log whose behaviour changes abruptly halfway, with the /metrics
endpoint on; a scraper thread reads the real Prometheus exposition over HTTP twice a second,
and the series are plotted with matplotlib.

    python benchmarks/metrics_dashboard.py [--users 600] [--encoder DIR]

Writes benchmarks/results/metrics-dashboard.png and metrics-dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streamrec.catalog import Catalog
from streamrec.config import load_settings
from streamrec.encoding import HFEncoder
from streamrec.endpoints import Endpoints
from streamrec.monitoring import Telemetry
from streamrec.pipeline import Pipeline
from streamrec.replay import replay
from streamrec.synthetic import generate
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

RESULTS = Path(__file__).parent / "results"


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f"|{k}={v}" for k, v in sorted(sample.labels.items()))
            values[key] = sample.value
    return values


def quantile(now: dict[str, float], then: dict[str, float], name: str, q: float, stage: str | None = None) -> float:
    """histogram_quantile(q, increase(name_bucket[window])), as Prometheus computes it."""
    def buckets(snapshot: dict[str, float]) -> dict[float, float]:
        out = {}
        for key, value in snapshot.items():
            if key.startswith(name + "_bucket") and (stage is None or f"stage={stage}" in key):
                bound = key.split("le=")[1].split("|")[0]
                out[float("inf") if bound == "+Inf" else float(bound)] = value
        return out

    current, earlier = buckets(now), buckets(then)
    increase = sorted((b, current[b] - earlier.get(b, 0.0)) for b in current)
    total = increase[-1][1] if increase else 0.0
    if total <= 0:
        return float("nan")
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in increase:  # linear interpolation inside the bucket, like Prometheus
        if count >= q * total:
            if bound == float("inf"):
                return previous_bound
            share = (q * total - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--encoder", default=None, help="model dir (default: a tiny GPT-2 built here)")
    args = parser.parse_args()
    log = generate(n_users=args.users, n_items=150, follow=0.9, drift_at=0.5, seed=21)
    encoder_dir = args.encoder or str(build_tiny_gpt2(tokenizer_corpus(log.items), RESULTS / ".tiny-gpt2"))
    settings = load_settings(encoder={"model": encoder_dir}, batch={"max_size": 32}, metrics_address="127.0.0.1:0")
    pipeline = Pipeline(settings, HFEncoder(settings.encoder), Catalog(log.items))
    telemetry = Telemetry(settings)
    endpoints = Endpoints(settings.metrics_address, telemetry.metrics, ready=lambda: (True, "ready")).start()
    url = f"http://127.0.0.1:{endpoints.port}/metrics"
    samples: list[tuple[float, dict[str, float]]] = []
    done = threading.Event()

    def scraper() -> None:
        start = time.monotonic()
        while not done.is_set():
            samples.append((time.monotonic() - start, scrape(url)))
            time.sleep(0.5)

    thread = threading.Thread(target=scraper, daemon=True)
    thread.start()
    metrics = replay(pipeline, log.events, progress=True, telemetry=telemetry)
    done.set()
    thread.join()
    samples.append((samples[-1][0] + 0.5, scrape(url)))
    endpoints.stop()
    plot(samples, RESULTS / "metrics-dashboard.png", len(log.events))
    summary = {k: metrics[k] for k in ("hit@10", "events", "events_per_second", "wall_seconds")}
    summary["drifts"] = telemetry.drift.detected
    (RESULTS / "metrics-dashboard.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


def plot(samples: list[tuple[float, dict[str, float]]], path: Path, n_events: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in samples]
    snap = [s[1] for s in samples]
    window = 20  # samples: 10 s, like rate(...[10s]) in Prometheus
    back = [max(0, i - window) for i in range(len(snap))]
    consumed = [s.get("streamrec_events_consumed_total|partition=0|topic=replay", 0) for s in snap]
    rate = [(consumed[i] - consumed[j]) / max(t[i] - t[j], 1e-9) for i, j in enumerate(back)]
    fig, axes = plt.subplots(4, 2, figsize=(13, 13))
    fig.suptitle(f"streamrec metrics from a real replay ({n_events} events, behaviour changes halfway)")
    ax = axes[0][0]
    ax.plot(t, rate, label="events/s")
    ax.set_title("throughput: rate(streamrec_events_consumed_total[10s])")
    ax.set_ylabel("events/s")
    ax = axes[0][1]
    for q in (0.5, 0.99):
        ax.plot(t, [quantile(snap[i], snap[j], "streamrec_event_to_recommendation_seconds", q)
                    for i, j in enumerate(back)], label=f"p{int(q * 100)}")
    ax.set_title("consume -> recommendation latency, last 10 s")
    ax.set_ylabel("seconds")
    ax.legend()
    ax = axes[1][0]
    for stage in ("encode", "train", "rank"):
        ax.plot(t, [quantile(snap[i], snap[j], "streamrec_stage_seconds", 0.99, stage)
                    for i, j in enumerate(back)], label=stage)
    ax.set_title("p99 seconds per batch by stage, last 10 s")
    ax.set_ylabel("seconds")
    ax.legend()
    ax = axes[1][1]
    hit = [s.get("streamrec_online_hit_at_10", 0) for s in snap]
    ax.plot(t, hit, label="online hit@10 (sliding window)")
    drift = [s.get("streamrec_drift_detected_total|signal=hit_rate", 0) for s in snap]
    for i in range(1, len(drift)):
        if drift[i] > drift[i - 1]:
            ax.axvline(t[i], color="red", linestyle="--", label="ADWIN drift" if drift[i - 1] == 0 else None)
    ax.set_title("online quality and drift")
    ax.legend()
    ax = axes[2][0]
    ax.plot(t, [s.get("process_resident_memory_bytes", 0) / 2**20 for s in snap], label="RSS MiB")
    ax.set_title("memory (process_resident_memory_bytes)")
    ax.set_ylabel("MiB")
    ax2 = ax.twinx()
    ax2.plot(t, [s.get("streamrec_users_in_memory", 0) for s in snap], color="orange", label="users in memory")
    ax2.set_ylabel("users")
    ax = axes[2][1]
    ax.plot(t, [s.get("streamrec_model_loss", float("nan")) for s in snap], label="loss")
    ax.set_title("model loss (streamrec_model_loss)")
    ax = axes[3][0]
    items = [s.get("streamrec_items_recommended_total", 0) for s in snap]
    cold = [s.get("streamrec_cold_items_recommended_total", 0) for s in snap]
    ax.plot(t, [(cold[i] - cold[j]) / max(items[i] - items[j], 1e-9) for i, j in enumerate(back)],
            label="cold share")
    ax.set_title("share of recommended items that were cold, last 10 s")
    ax.set_ylabel("share")
    axes[3][1].axis("off")
    for row in axes:
        for ax in row:
            ax.set_xlabel("seconds since start")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
