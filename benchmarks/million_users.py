"""A million users (issue #31): 1,000,000 distinct users through the replay and through Kafka, with
``window.max_users`` 200,000 and an idle TTL. Writes benchmarks/results/million-users.{json,md,png}.

    python benchmarks/million_users.py --bootstrap 127.0.0.1:9092             # both paths; about 1 h
    python benchmarks/million_users.py --users 100000 --max-users 20000 --paths replay   # a quick look

The log: :mod:`harness.user_log` (generated as it is read, never held in memory). The idle TTL
binds in its first half, the cap in its second, and the cap is full at its end.

Both paths run the tiny GPT-2 (1 layer, 32 wide) in ``incremental`` mode with a KV-cache budget of
``--kv-mb`` MB, a small head, micro-batches of 512, one torch thread. Sampled as they run: resident
memory, users held, evictions, KV-cache bytes (the replay after every batch, in a process of its own;
the service from /proc and /metrics every 2 s).

* replay: :func:`streamrec.replay.replay` over the generator; then the state saved and loaded into a
  fresh pipeline: the users restored must be exactly the users held, at most the cap.
* Kafka: the log produced to a 1-partition topic, ``streamrec run`` from the backlog to the end, then
  kill -9 and a restart, which restores from the changelog: the users restored (its log) must equal
  the users held before the kill and the live (not tombstoned) keys of the changelog, at most the cap.

Both: no user held or restored idle longer than the TTL at the end (an evicted user brought back).
One partition, because the idle TTL's clock is the newest event of each batch: with several partitions
consumed at different event-time speeds, a user may be held past the TTL by up to that skew.
"""

# ruff: noqa: E402  (imports after sys.path names this checkout and tests/kafka)
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# streamrec from a copy of this checkout taken at the start (STREAMREC_CODE), so edits made during
# the hour it runs change nothing; then tests/kafka for kafkakit.
sys.path[:0] = [os.environ.get("STREAMREC_CODE", str(REPO)), str(REPO / "tests" / "kafka")]

from harness.machine import machine_info, mark_end
from harness.user_log import N_ITEMS, user_log
from streamrec.events import Event


def soak_settings(args: argparse.Namespace, model: Path) -> dict[str, Any]:
    return {
        "encoder": {"model": str(model), "threads": 1, "mode": "incremental", "kv_cache_bytes": args.kv_mb << 20},
        "window": {"max_events": 20, "max_users": args.max_users, "idle_ttl_seconds": args.ttl_hours * 3600},
        "head": {"negatives": 64, "replay_sample": 32, "steps_per_batch": 1, "dim": 16},
        "batch": {"max_size": 512, "max_wait_ms": 200},
    }


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory now (VmRSS), 0 once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024  # type: ignore[union-attr]


def stale_users(windows: Any, cutoff: int) -> int:
    """Users held whose newest event is older than ``cutoff``: idle past the TTL, so evicted once."""
    return sum(1 for user in windows.users() if (window := windows.window(user)) and window[-1].timestamp < cutoff)


def run_replay(args: argparse.Namespace, model: Path, items: Path, work: Path) -> dict[str, Any]:
    """The replay path, in this (child) process: its resident memory is the pipeline's."""
    import torch

    from streamrec.catalog import Catalog, read_items
    from streamrec.config import load_settings
    from streamrec.encoding import HFEncoder
    from streamrec.pipeline import Pipeline
    from streamrec.replay import replay

    torch.set_num_threads(1)
    settings = load_settings(**soak_settings(args, model))
    pipeline = Pipeline(settings, HFEncoder(settings.encoder), Catalog(read_items(items)))
    count, newest, samples = [0], [0], []
    started = time.monotonic()

    def counted() -> Iterator[Event]:
        for event in user_log(args.users, args.max_users, int(args.ttl_hours * 3_600_000), args.seed):
            count[0] += 1
            newest[0] = event.timestamp
            yield event

    def on_batch(_: Any, last: bool = False) -> None:
        if last or not samples or count[0] - samples[-1]["events"] >= args.sample_every:
            samples.append({"events": count[0], "seconds": round(time.monotonic() - started, 1),
                            "rss_bytes": rss_bytes(), "users_held": len(pipeline.windows),
                            "evictions": pipeline.windows.stats.evicted_users,
                            "kv_cache_bytes": pipeline.window_encoder.cache_bytes})
            print(f"replay: {json.dumps(samples[-1])}", file=sys.stderr, flush=True)

    baseline = rss_bytes()
    metrics = replay(pipeline, counted(), progress=False, on_batch=on_batch)
    on_batch(None, last=True)
    held = set(pipeline.windows.users())
    cutoff = newest[0] - int(args.ttl_hours * 3_600_000)
    state = work / "replay-state"
    pipeline.save(state)
    fresh = Pipeline(settings, HFEncoder(settings.encoder), Catalog(read_items(items)))
    fresh.load(state)
    restored = set(fresh.windows.users())
    stats = getattr(pipeline.window_encoder, "stats", None)
    return {"path": "replay", "events": count[0], "users": metrics["users"],
            "users_estimated": metrics["users_estimated"],
            "events_per_second": metrics["events_per_second"], "baseline_rss_bytes": baseline,
            "peak_rss_bytes": max(s["rss_bytes"] for s in samples), "held_at_end": len(held),
            "max_users_held": max(s["users_held"] for s in samples), "evictions": pipeline.windows.stats.evicted_users,
            "max_kv_cache_bytes": max(s["kv_cache_bytes"] for s in samples),
            "kv_cache_peak_within_batch": getattr(stats, "peak_cache_bytes", None),
            "kv_cache_evictions": getattr(stats, "evictions", None),
            "restored": len(restored), "restored_equals_held": restored == held,
            "stale_held": stale_users(pipeline.windows, cutoff), "stale_restored": stale_users(fresh.windows, cutoff),
            "hit@10": metrics["hit@10"], "samples": samples}


class ServiceSampler(threading.Thread):
    """Samples the service's resident memory (/proc) and its metrics every ``every`` s."""

    def __init__(self, service: Any, port: int, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.service, self.port, self.every = service, port, every
        self.samples: list[dict[str, Any]] = []
        self.halt = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        from kafkakit import probe, scrape

        while not self.halt.wait(self.every) and self.service.alive():
            sample = {"seconds": round(time.monotonic() - self.started, 1),
                      "rss_bytes": rss_bytes(self.service.proc.pid)}
            if probe(self.port, "/healthz")[0]:
                metrics = scrape(self.port)
                sample.update(events=int(sum(v for (name, _), v in metrics.items()
                                             if name == "streamrec_events_consumed_total")),
                              users_held=int(metrics.get(("streamrec_users_in_memory", ()), 0)),
                              evictions=int(metrics.get(("streamrec_evictions_total", ()), 0)),
                              kv_cache_bytes=int(metrics.get(("streamrec_kv_cache_bytes", ()), 0)))
            self.samples.append(sample)


def produce_log(bootstrap: str, topic: str, args: argparse.Namespace) -> tuple[int, int]:
    """The log to ``topic``, streamed; returns (events, the newest event's time)."""
    from confluent_kafka import Producer

    from streamrec.events import encode_event

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                         "compression.type": "lz4"})
    failed: list[str] = []
    count, newest = 0, 0
    for event in user_log(args.users, args.max_users, int(args.ttl_hours * 3_600_000), args.seed):
        while True:
            try:
                producer.produce(topic, encode_event(event), key=event.user_id.encode(),
                                 on_delivery=lambda error, _: error and failed.append(str(error)))
                break
            except BufferError:
                producer.poll(0.05)
        count, newest = count + 1, event.timestamp
        if count % 100_000 == 0:
            producer.poll(0)
            print(f"kafka: produced {count:,}", flush=True)
    if producer.flush(120) or failed:
        raise RuntimeError(f"producing failed: {failed[:3]}")
    return count, newest


def live_changelog(bootstrap: str, topic: str) -> dict[str, bytes]:
    """The changelog's latest record per key, tombstones dropped (what a restart restores)."""
    from kafkakit import KafkaKit

    latest: dict[str, bytes | None] = {}
    for record in KafkaKit(bootstrap, Path(), Path()).read_all(topic, timeout=1200):
        latest[record.key.decode()] = record.value  # type: ignore[union-attr]
    return {user: value for user, value in latest.items() if value is not None}


def run_kafka(args: argparse.Namespace, model: Path, items: Path, work: Path) -> dict[str, Any]:
    import pytest
    from kafkakit import KafkaKit, probe

    Failed = pytest.fail.Exception  # what KafkaKit.wait_for raises on a timeout or a dead service

    from streamrec.windows import WindowStore

    kit = KafkaKit(args.bootstrap, model, work / "kafka")
    (work / "kafka").mkdir()
    topic = kit.create_topic("million-events", 1)  # one partition: processed in event time order (below)
    events, newest = produce_log(args.bootstrap, topic, args)
    group, port = kit.name("million"), kit.free_port()
    values = kit.settings(input_topic=topic, output_topic=kit.create_topic("million-recs", 3), group=group,
                          dead_letter_topic=kit.name("million-dlq"))
    values.update({key: {**values.get(key, {}), **value} for key, value in soak_settings(args, model).items()})
    values["metrics_address"] = f"127.0.0.1:{port}"
    values["kafka"]["progress_interval_seconds"] = 60
    config, _ = kit.write_config(values)
    result: dict[str, Any] = {"path": "kafka", "events": events, "users": args.users}
    try:
        service = kit.start(config, "--catalog", str(items), name="soak")
        sampler = ServiceSampler(service, port)
        sampler.start()
        kit.wait_caught_up(group, topic, [service], timeout=4 * 3600)
        done = time.monotonic() - sampler.started
        kit.wait_for(lambda: sampler.samples[-1]["seconds"] > done and "users_held" in sampler.samples[-1],
                     "a scrape after the last batch", 60, [service])
        held = sampler.samples[-1]["users_held"]
        sampler.halt.set()
        service.kill()  # kill -9, then a restart restores the windows from the changelog
        result.update(events_per_second=events / done, held_before_kill=held)
        restart = kit.start(config, "--catalog", str(items), name="restart")
        again = ServiceSampler(restart, port, every=0.5)
        again.start()
        kit.wait_for(lambda: probe(port, "/readyz")[0] == 200, "the restart to be ready", 1200, [restart])
        restored = sum(int(n) for n in re.findall(r"\((\d+) windows restored\)", restart.log()))
        again.halt.set()
        result["exit_code_after_restart"] = restart.stop()
        live = live_changelog(args.bootstrap, f"{group}-windows-changelog")
        store = WindowStore(max_events=20, max_users=10 * args.users)
        for value in live.values():
            store.restore(value)
        cutoff = newest - int(args.ttl_hours * 3_600_000)
        result.update(
            peak_rss_bytes=max(s["rss_bytes"] for s in sampler.samples),
            baseline_rss_bytes=next(s["rss_bytes"] for s in sampler.samples if s.get("events")),
            max_users_held=max(s.get("users_held", 0) for s in sampler.samples),
            evictions=max(s.get("evictions", 0) for s in sampler.samples),
            max_kv_cache_bytes=max(s.get("kv_cache_bytes", 0) for s in sampler.samples),
            restored=restored, restored_equals_held=restored == held, changelog_live_users=len(live),
            stale_restored=stale_users(store, cutoff),
            restart_peak_rss_bytes=max(s["rss_bytes"] for s in again.samples),
            samples=sampler.samples, restart_samples=again.samples)
    except (Exception, Failed) as exc:  # a failed path is reported, with the service's log
        result["error"] = f"{type(exc).__name__}: {str(exc)[-3000:]}"
    finally:
        kit.cleanup()
    return result


def passed(run: dict[str, Any], args: argparse.Namespace) -> bool:
    return (not run.get("error") and run["max_users_held"] <= args.max_users and run["restored"] <= args.max_users
            and run["restored_equals_held"] and run["stale_restored"] == 0 and run.get("stale_held", 0) == 0
            and run["max_kv_cache_bytes"] <= args.kv_mb << 20
            and run.get("changelog_live_users", run["restored"]) == run["restored"])


def per_100k(run: dict[str, Any]) -> float:
    """Resident memory the users held cost: (peak - at start) per 100,000 users held at most."""
    return (run["peak_rss_bytes"] - run["baseline_rss_bytes"]) / max(run["max_users_held"], 1) * 100_000


def markdown(report: dict[str, Any]) -> str:
    m, a = report["machine"], report["args"]
    lines = [
        "# A million users: memory bounded by window.max_users and the idle TTL", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['date']}; load average {m['load_average'][0]:.1f} at start, "
        f"{m.get('load_average_end', [0])[0]:.1f} at end (the paths ran at once"
        f"{', beside other work' if a['shared'] else ''}).",
        f"Log: {a['users']:,} distinct users (generated, streamed), window.max_users {a['max_users']:,}, "
        f"idle TTL {a['ttl_hours']} h (event time), the tiny GPT-2 in `incremental` mode, KV-cache budget "
        f"{a['kv_mb']} MB. Command: `{report['command']}`", "",
        "| path | events | users | events/s | max users held | evictions | peak RSS (MB) | at start (MB) "
        "| per 100k users held (MB) | max KV cache (MB) | restored (= held) | stale restored | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    for run in report["runs"]:
        if run.get("error"):
            lines.append(f"| {run['path']} | failed: {run['error'][:300]} ||||||||||||")
            continue
        lines.append(
            f"| {run['path']} | {run['events']:,} | {run['users']:,} | {run['events_per_second']:.0f} "
            f"| {run['max_users_held']:,} | {run['evictions']:,} | {run['peak_rss_bytes'] / 2**20:.0f} "
            f"| {run['baseline_rss_bytes'] / 2**20:.0f} | {per_100k(run) / 2**20:.0f} "
            f"| {run['max_kv_cache_bytes'] / 2**20:.1f} "
            f"| {run['restored']:,} ({run['restored_equals_held']}) | {run['stale_restored']} "
            f"| {'pass' if run['passed'] else 'FAIL'} |")
    lines += ["", "Restored: the replay loads its saved state into a fresh pipeline; the service is killed (-9) "
              "at the end and restarted, restoring from the compacted changelog (the live keys the benchmark "
              "reads back: " + ", ".join(f"{r['changelog_live_users']:,}" for r in report["runs"]
                                         if "changelog_live_users" in r) + "). Stale: users held or restored whose "
              "newest event is older than the TTL before the log's end, i.e. evicted users brought back (must be 0).",
              "", "![memory against events](million-users.png)", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, users) = plt.subplots(1, 2, figsize=(11, 4))
    for run in report["runs"]:
        points = [s for s in run.get("samples", []) if "events" in s]
        if points:
            memory.plot([s["events"] for s in points], [s["rss_bytes"] / 2**20 for s in points], label=run["path"])
            users.plot([s["events"] for s in points], [s["users_held"] for s in points], label=f"{run['path']}: held")
    users.axhline(report["args"]["max_users"], color="grey", linestyle="--", label="window.max_users")
    for axis, title in ((memory, "resident memory (MB)"), (users, "users held")):
        axis.set_xlabel("events")
        axis.set_title(title)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("STREAMREC_TEST_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--max-users", type=int, default=200_000)
    parser.add_argument("--ttl-hours", type=float, default=2.0)
    parser.add_argument("--kv-mb", type=int, default=64, help="encoder.kv_cache_bytes in MB")
    parser.add_argument("--paths", nargs="+", choices=["replay", "kafka"], default=["replay", "kafka"])
    parser.add_argument("--sample-every", type=int, default=10_000, help="replay: events between samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", action="store_true", help="say in the report that other work shared the machine")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the replay path's child: its work directory
    args = parser.parse_args()
    if args.one:
        work = Path(args.one)
        print(json.dumps(run_replay(args, work / "tiny-gpt2", work / "items.jsonl", work)))
        return
    from streamrec.synthetic import make_catalog, write_items
    from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

    machine = machine_info(extra_packages=("confluent_kafka", "librdkafka"))
    work = Path(tempfile.mkdtemp(prefix="million-users-"))
    catalogue = make_catalog(N_ITEMS, random.Random(0))
    write_items(catalogue, work / "items.jsonl")
    model = build_tiny_gpt2(tokenizer_corpus(catalogue), work / "tiny-gpt2", n_layer=1, n_embd=32, n_head=2)
    if "STREAMREC_CODE" not in os.environ:  # the replay child's and the services' streamrec: a copy
        shutil.copytree(REPO / "streamrec", work / "code" / "streamrec", ignore=shutil.ignore_patterns("__pycache__"))
        os.environ["STREAMREC_CODE"] = str(work / "code")
    code = os.environ["STREAMREC_CODE"]
    os.environ["PYTHONPATH"] = os.pathsep.join([code, *filter(None, [os.environ.get("PYTHONPATH")])])
    child = None
    if "replay" in args.paths:  # in a process of its own, beside the Kafka path
        child = subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--one", str(work)],
                                 stdout=subprocess.PIPE, text=True)
    runs = [run_kafka(args, model, work / "items.jsonl", work)] if "kafka" in args.paths else []
    if child is not None:
        out, _ = child.communicate()
        lines = out.strip().splitlines()
        runs.insert(0, json.loads(lines[-1]) if child.returncode == 0 and lines
                    else {"path": "replay", "error": f"exit {child.returncode}"})
    for run in runs:
        run["passed"] = passed(run, args)
    mark_end(machine)
    report = {"machine": machine, "command": " ".join(["python benchmarks/million_users.py", *sys.argv[1:]]),
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "one"},
              "users": args.users, "max_users": args.max_users,
              "peak_rss_bytes": max((r["peak_rss_bytes"] for r in runs if "peak_rss_bytes" in r), default=None),
              "runs": runs}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "million-users.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / "million-users.md").write_text(markdown(report))
    plot(report, args.out_dir / "million-users.png")
    print(markdown(report))
    sys.exit(0 if runs and all(r["passed"] for r in runs) else 1)


if __name__ == "__main__":
    main()
