"""The same synthetic log and tiny model through Kafka (``streamrec run``) and through the embedded
replay, in one run. Writes benchmarks/results/kafka-vs-replay.{json,md}.

    python benchmarks/kafka_vs_replay.py [--events N] [--bootstrap-servers HOST:PORT]

* Embedded: :func:`streamrec.replay.replay` over the first N events; events/s over its loop.
* Kafka, throughput: the N events are produced first, then ``streamrec run`` (a subprocess, same
  settings) works through the backlog; events/s from the first consumed message to the last
  recommendation produced (process start-up and group join excluded, as model loading is for
  the embedded path).
* Kafka, latency: with the service caught up, M more events are produced at a steady rate (half
  the measured Kafka throughput). For every such event, the first recommendation for its user
  whose source offset covers it gives two latencies: from the event's produce time, and from
  the consume time of the batch that covered it, to the recommendation's produce time.

Needs a broker (scripts/kafka-up.sh). All clocks are this machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from harness.machine import load_average, machine_info, mark_end, version
from streamrec.catalog import Catalog
from streamrec.config import load_settings
from streamrec.encoding import HFEncoder
from streamrec.kafka.produce import produce_events
from streamrec.kafka.tail import decode_recommendation
from streamrec.kafka.topics import TopicSpec, ensure_topic
from streamrec.pipeline import Pipeline
from streamrec.recommendations import Recommendation
from streamrec.replay import replay
from streamrec.synthetic import generate, write_items
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 0.8
KAFKA_PACKAGES = ("confluent_kafka", "librdkafka")


def read_recommendations(bootstrap: str, topic: str) -> list[tuple[int, int, int, Recommendation]]:
    """(partition, offset, timestamp, recommendation) of every committed record."""
    return [(p, o, ts, decode_recommendation(v)) for p, o, ts, _, v in read_topic(bootstrap, topic)
            if v is not None]


def read_topic(bootstrap: str, topic: str) -> list[tuple[int, int, int, bytes | None, bytes | None]]:
    """(partition, offset, timestamp, key, value) of every committed record."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "isolation.level": "read_committed", "fetch.wait.max.ms": 50})
    partitions = sorted(consumer.list_topics(topic, timeout=20).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[tuple[int, int, int, bytes | None, bytes | None]] = []
    done: set[int] = set()
    while len(done) < len(partitions):
        for m in consumer.consume(5000, 0.5):
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    done.add(int(m.partition() or 0))
                continue
            records.append((int(m.partition() or 0), int(m.offset() or 0), m.timestamp()[1], m.key(), m.value()))
    consumer.close()
    return sorted(records)


def offsets(bootstrap: str, topic: str, group: str | None = None) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group or "bench-offsets"})
    partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
    if group is None:
        found = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in partitions}
    else:
        found = {tp.partition: tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in partitions],
                                                                       timeout=20)}
    consumer.close()
    return found


def wait_caught_up(bootstrap: str, topic: str, group: str, service: subprocess.Popen[bytes], timeout: float) -> None:
    ends, deadline = offsets(bootstrap, topic), time.monotonic() + timeout
    while offsets(bootstrap, topic, group) != ends:
        if service.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the service exited or fell behind (exit {service.returncode})")
        time.sleep(0.25)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99)),
            "max": float(array.max()), "n": len(values)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info(extra_packages=KAFKA_PACKAGES)
    work = Path(tempfile.mkdtemp(prefix="kafka-vs-replay-"))
    total = args.events + args.latency_events
    log = generate(n_users=max(10, total // 24), n_items=args.items, events_per_user=(10, 40), seed=0)
    if len(log.events) < total:
        raise SystemExit(f"the synthetic log has {len(log.events)} events, fewer than {total}")
    backlog, live = log.events[:args.events], log.events[args.events:total]
    model = build_tiny_gpt2(tokenizer_corpus(log.items), work / "tiny-gpt2")
    catalog_path = write_items(log.items, work / "items.csv")
    values: dict[str, Any] = {"encoder": {"model": str(model), "threads": args.threads},
                              "batch": {"max_size": args.batch_size},
                              "state_dir": str(work / "state")}
    settings = load_settings(**values)

    print(f"embedded replay of {len(backlog)} events ...", flush=True)
    pipeline = Pipeline(settings, HFEncoder(settings.encoder), Catalog(log.items))
    embedded = replay(pipeline, backlog, progress=False)

    run_id = uuid.uuid4().hex[:8]
    topic, output, group = f"bench-events-{run_id}", f"bench-recs-{run_id}", f"bench-{run_id}"
    ensure_topic(AdminClient({"bootstrap.servers": args.bootstrap_servers}), TopicSpec(topic, args.partitions, {}))
    values["kafka"] = {"bootstrap_servers": args.bootstrap_servers, "input_topic": topic, "output_topic": output,
                       "group": group, "dead_letter_topic": f"bench-dlq-{run_id}", "checkpoint_interval_seconds": 60}
    settings = load_settings(**values)
    print(f"producing {len(backlog)} events to {topic} ...", flush=True)
    produced = produce_events(settings, backlog, topic, progress=False)
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(values))
    script = Path(sys.executable).with_name("streamrec")
    log_file = (work / "service.log").open("wb")
    print("streamrec run (backlog) ...", flush=True)
    service = subprocess.Popen([str(script), "--log-level", "INFO", "run", "--config", str(config),
                                "--catalog", str(catalog_path)], stdout=log_file, stderr=subprocess.STDOUT,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        wait_caught_up(args.bootstrap_servers, topic, group, service, timeout=1800)
        backlog_ends = offsets(args.bootstrap_servers, topic)
        recs = read_recommendations(args.bootstrap_servers, output)
        started = min(rec.source["consumed_at"] for *_, rec in recs)
        finished = max(ts for _, _, ts, _ in recs)
        kafka_eps = len(backlog) / ((finished - started) / 1000)
        rate = max(1.0, kafka_eps * args.rate_fraction)
        print(f"Kafka backlog: {kafka_eps:.0f} events/s; now {len(live)} events at {rate:.0f}/s ...", flush=True)
        produce_events(settings, live, topic, rate=rate, progress=False)
        wait_caught_up(args.bootstrap_servers, topic, group, service, timeout=600)
    finally:
        service.send_signal(signal.SIGTERM)
        exit_code = service.wait(120)
        log_file.close()

    # Latency: the first recommendation covering each live event.
    inputs = read_topic(args.bootstrap_servers, topic)
    recs = read_recommendations(args.bootstrap_servers, output)
    by_user: dict[str, list[tuple[int, int, int, int]]] = {}
    for _, _, ts, rec in recs:  # partition then offset order = each user's output order
        by_user.setdefault(rec.user_id, []).append((rec.source["partition"], rec.source["offset"], ts,
                                                    rec.source["consumed_at"]))
    from_produce, from_consume, uncovered = [], [], 0
    for partition, offset, produced_at, _, value in inputs:
        if offset < backlog_ends[partition] or value is None:
            continue
        user = msgpack.unpackb(value, raw=False)["user_id"]
        cover = next(((ts, consumed) for p, o, ts, consumed in by_user.get(user, [])
                      if p == partition and o >= offset), None)
        if cover is None:
            uncovered += 1
            continue
        from_produce.append(cover[0] - produced_at)
        from_consume.append(cover[0] - cover[1])
    embedded_eps = float(embedded["events_per_second"])
    return {
        "machine": mark_end(machine),
        "settings": {"events": len(backlog), "latency_events": len(live), "partitions": args.partitions,
                     "batch_max_size": settings.batch.max_size, "batch_max_wait_ms": settings.batch.max_wait_ms,
                     "batch_adaptive": settings.batch.adaptive,
                     "encoder": "tiny random GPT-2 (2 layers, 64 dims) via build_tiny_gpt2",
                     "torch_threads": args.threads,
                     "users": len({e.user_id for e in log.events[:total]}), "items": len(log.items),
                     "head": settings.head.model_dump(mode="json")},
        "embedded": {"events_per_second": embedded_eps, "wall_seconds": embedded["wall_seconds"],
                     "hit@10": embedded.get("hit@10")},
        "kafka": {"events_per_second": kafka_eps, "produce_events_per_second": len(backlog) / produced.seconds,
                  "live_rate": rate, "latency_ms_from_produce": percentiles(from_produce),
                  "latency_ms_from_consume": percentiles(from_consume), "uncovered_live_events": uncovered,
                  "service_exit_code": exit_code},
        "ratio": kafka_eps / embedded_eps,
        "meets_target": kafka_eps >= TARGET_RATIO * embedded_eps,
        "target": f"Kafka >= {TARGET_RATIO:.0%} of embedded events/s",
    }


def _one_minute(load: list[float] | None) -> str:
    return f"{load[0]:.1f}" if load else "n/a"


def markdown(result: dict[str, Any]) -> str:
    m, s, k = result["machine"], result["settings"], result["kafka"]
    lp, lc = k["latency_ms_from_produce"], k["latency_ms_from_consume"]
    return "\n".join([
        "# Kafka service vs embedded replay",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {version(m, 'torch')}, "
        f"confluent-kafka {version(m, 'confluent_kafka')} (librdkafka {version(m, 'librdkafka')}); load average "
        f"{_one_minute(load_average(m))} at start, {_one_minute(load_average(m, end=True))} at end. "
        "Broker on the same machine.",
        "",
        f"Workload: {s['events']} synthetic events ({s['users']} users, {s['items']} items), "
        f"{s['partitions']} partitions, micro-batches of {s['batch_max_size']} (max wait {s['batch_max_wait_ms']} ms"
        f"{'; the Kafka service adapts both to the load' if s.get('batch_adaptive') else ''}), "
        f"{s['encoder']}, default head, {s['torch_threads']} torch thread(s) in both paths.",
        "",
        "| path | events/s | latency p50 (ms) | latency p99 (ms) |",
        "|---|---:|---:|---:|",
        f"| embedded replay | {result['embedded']['events_per_second']:.0f} | - | - |",
        f"| Kafka, backlog | {k['events_per_second']:.0f} | - | - |",
        f"| Kafka, live at {k['live_rate']:.0f} events/s, from produce | - | {lp['p50']:.0f} | {lp['p99']:.0f} |",
        f"| Kafka, live, from consume | - | {lc['p50']:.0f} | {lc['p99']:.0f} |",
        "",
        f"Kafka reaches {result['ratio']:.0%} of the embedded events/s: target ({result['target']}) "
        f"{'met' if result['meets_target'] else 'NOT met'}. {k['uncovered_live_events']} live events had no "
        f"covering recommendation; the service exited {k['service_exit_code']}.",
        "",
    ])


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no Rayon pool competing with torch
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latency-events", type=int, default=None, help="default: events / 4")
    parser.add_argument("--rate-fraction", type=float, default=0.5, help="live rate, of Kafka's throughput")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, both paths (2 threads on a busy 2-core box spin-wait badly)")
    parser.add_argument("--bootstrap-servers", default=os.environ.get("STREAMREC_TEST_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.latency_events = args.latency_events or args.events // 4
    result = run(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "kafka-vs-replay.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out_dir / "kafka-vs-replay.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
