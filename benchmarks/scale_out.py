"""One instance against a trainer and N scorers (``kafka.role``), the same log through Kafka.
Writes benchmarks/results/scale-out.{json,md}.

    python benchmarks/scale_out.py ../shared/datasets/ml-100k --encoder minilm --scorers 1 2 3 \
        [--limit N] [--rate EVENTS_PER_S] [--bootstrap-servers HOST:PORT]

Each run gets fresh topics (input with 6 partitions, items, output) and starts its processes
(``streamrec run``, one torch thread each), then produces the log at ``--rate`` events/s, keyed by
user, in time order, so the service runs live rather than on a backlog; it waits until every
event is committed (and, scaled out, learned by the trainer and served by every scorer), then
stops everything with SIGTERM. Measured:

* prequential hit@10 / ndcg@10 from the output topic: for each event, the user's newest
  recommendation made before it (source offset below the event's);
* the events each process handled (its final stats line);
* model traffic: snapshot bytes the trainer wrote per second of the run (each scorer reads
  the same bytes);
* model delay: for each event, from its Kafka timestamp until every scorer serves a snapshot
  whose offsets cover it (the trainer's "published" and each scorer's "serving" log lines),
  p50 and p99 over events. One instance learns an event in the batch that serves it: no delay.

Needs a broker (scripts/kafka-up.sh). All clocks are this machine's.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import msgpack
import numpy as np
import yaml
from confluent_kafka.admin import AdminClient

from harness.machine import machine_info, mark_end
from harness.pretrained import DEFAULT_CACHE, resolve_encoder
from kafka_vs_replay import offsets, percentiles, read_recommendations, read_topic
from streamrec.config import Settings, load_settings
from streamrec.events import ActionVocabulary, Event
from streamrec.kafka.clients import admin_config
from streamrec.kafka.produce import load_events, produce_events
from streamrec.kafka.topics import TopicSpec, ensure_topic

RESULTS = Path(__file__).resolve().parent / "results"
PARTITIONS = 6
STREAMREC = [sys.executable, "-c", "from streamrec.cli import app; app()"]
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
PUBLISHED = re.compile(r"published model v(\d+) \(\d+ bytes, offsets (\{.*\})\)")
SERVING = re.compile(r"serving model v(\d+) ")


def _time(line: str) -> float | None:
    found = LOG_TIME.match(line)
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if found else None


def snapshot_offsets(log: str) -> dict[int, dict[int, int]]:
    """version -> the input offsets the trainer's snapshot of that version had learned up to."""
    return {int(m.group(1)): {int(p): int(o) for p, o in yaml.safe_load(m.group(2)).items()}
            for m in map(PUBLISHED.search, log.splitlines()) if m}


def loads(log: str) -> list[tuple[float, int]]:
    """(time, version) of each snapshot a scorer started serving."""
    found = []
    for line in log.splitlines():
        match, at = SERVING.search(line), _time(line)
        if match and at is not None:
            found.append((at, int(match.group(1))))
    return found


def model_delays(events: list[dict[str, Any]], published: dict[int, dict[int, int]],
                 scorers: list[list[tuple[float, int]]]) -> list[float]:
    """Per event: seconds from its timestamp until the last scorer serves a snapshot covering it."""
    delays = []
    for event in events:
        worst = 0.0
        for served in scorers:
            covered = [at for at, version in served
                       if published.get(version, {}).get(event["partition"], -1) > event["offset"]]
            if not covered:
                worst = float("nan")
                break
            worst = max(worst, covered[0] - event["kafka_ms"] / 1000)
        delays.append(worst)
    return [d for d in delays if d == d]


def quality(events: list[dict[str, Any]], bootstrap: str, output: str, k: int = 10) -> dict[str, float]:
    shown: dict[str, tuple[list[int], list[list[str]]]] = {}
    for _, _, _, rec in read_recommendations(bootstrap, output):
        sources, lists = shown.setdefault(rec.user_id, ([], []))
        sources.append(rec.source["offset"])
        lists.append([item.item_id for item in rec.items])
    hits, gains, scored = 0.0, 0.0, 0
    for event in events:
        sources, lists = shown.get(event["user_id"], ([], []))
        before = bisect_right(sources, event["offset"] - 1)
        if before == 0:
            continue
        ranked, scored = lists[before - 1][:k], scored + 1
        if event["item_id"] in ranked:
            hits += 1
            gains += 1 / np.log2(ranked.index(event["item_id"]) + 2)
    return {"hit@10": hits / max(scored, 1), "ndcg@10": gains / max(scored, 1), "scored": scored}


def run_once(args: argparse.Namespace, scorers: int, model: str, work: Path) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    names = {"input_topic": f"so-events-{run_id}", "output_topic": f"so-recs-{run_id}",
             "items_topic": f"so-items-{run_id}", "dead_letter_topic": f"so-dlq-{run_id}", "group": f"so-{run_id}"}
    values: dict[str, Any] = {"domain": args.domain, "encoder": {"model": model, "threads": 1},
                              "kafka": {"bootstrap_servers": args.bootstrap_servers, **names,
                                        "model_interval_seconds": args.interval, "progress_interval_seconds": 0}}
    settings = load_settings(**values)
    events, items, _ = load_events(settings, args.dataset, limit=args.limit)
    ensure_topic(AdminClient(admin_config(settings)), TopicSpec(names["input_topic"], PARTITIONS, {}))
    produce_events(settings, [], names["input_topic"], items=items, items_topic=names["items_topic"], progress=False)
    roles = ["single"] if scorers == 0 else ["trainer"] + ["scorer"] * scorers
    processes = []
    for n, role in enumerate(roles):
        config = work / f"{run_id}-{n}.yaml"
        config.write_text(yaml.safe_dump({**values, "state_dir": str(work / f"{run_id}-state-{n}")}))
        log = (work / f"{run_id}-{n}.log").open("wb")
        command = [*STREAMREC, "--log-level", "INFO", "run", "--config", str(config), "--role", role,
                   "--metrics-address", ""]
        processes.append((role, log, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
    try:
        return _measure(args, scorers, names, settings, events, processes, work, run_id)
    finally:
        for _, log, process in processes:  # also when a process failed or fell behind
            if process.poll() is None:
                process.kill()
            log.close()


def _measure(args: argparse.Namespace, scorers: int, names: dict[str, str], settings: Settings,
             events: list[Event], processes: Sequence[tuple[str, IO[bytes], subprocess.Popen[bytes]]], work: Path,
             run_id: str) -> dict[str, Any]:
    time.sleep(args.warmup)  # the processes load the encoder and join the group
    started = time.time()
    produce_events(settings, events, names["input_topic"], rate=args.rate, progress=True)
    produced = time.time() - started
    ends, deadline = offsets(args.bootstrap_servers, names["input_topic"]), time.monotonic() + args.timeout
    groups = [names["group"]] + ([f"{names['group']}-trainer"] if scorers else [])
    while any(offsets(args.bootstrap_servers, names["input_topic"], g) != ends for g in groups):
        if time.monotonic() > deadline or any(p.poll() is not None for _, _, p in processes):
            raise SystemExit(f"a process exited or fell behind; logs in {work}")
        time.sleep(0.5)
    caught_up = time.time() - started
    time.sleep(2 * args.interval + 2)  # the last snapshot reaches every scorer
    for _, _, process in processes:
        process.terminate()
    for _, _, process in processes:
        process.wait(120)
    logs = [(role, (work / f"{run_id}-{n}.log").read_text(errors="replace"))
            for n, (role, _, _) in enumerate(processes)]
    stats = [next(json.loads(line)["stats"] for line in text.splitlines() if line.startswith('{"stats"'))
             for _, text in logs]
    positive = ActionVocabulary.for_domain(args.domain).is_positive
    recorded = [{**msgpack.unpackb(v, raw=False), "partition": p, "offset": o, "kafka_ms": ts}
                for p, o, ts, _, v in read_topic(args.bootstrap_servers, names["input_topic"]) if v]
    scored = [e for e in recorded if positive(e["action"])]
    result: dict[str, Any] = {
        "instances": max(scorers, 1), "setup": f"a trainer and {scorers} scorer(s)" if scorers else "one instance",
        "events": len(events), **quality(scored, args.bootstrap_servers, names["output_topic"]),
        "events_encoded": [s["events_processed"] for s, (role, _) in zip(stats, logs, strict=True)
                           if role != "trainer"],
        "trainer_events": stats[0]["events_processed"] if scorers else None,
        "batches": [s["batches"] for s, (role, _) in zip(stats, logs, strict=True) if role != "trainer"],
        "recommendations": [s["recommendations_produced"] for s, (role, _) in zip(stats, logs, strict=True)
                            if role != "trainer"],
        "produce_seconds": produced, "caught_up_seconds": caught_up}
    if scorers:
        trainer_stats = stats[0]
        published = snapshot_offsets(logs[0][1])
        delays = model_delays(recorded, published, [loads(text) for role, text in logs if role == "scorer"])
        spread = percentiles(delays) if delays else {"p50": None, "p99": None}
        result.update({"model_delay_p50_seconds": spread["p50"], "model_delay_p99_seconds": spread["p99"],
                       "model_bytes_per_second": trainer_stats["snapshot_bytes"] / caught_up,
                       "snapshots": trainer_stats["snapshots"],
                       "snapshot_bytes_mean": trainer_stats["snapshot_bytes"] / max(trainer_stats["snapshots"], 1)})
    else:
        result.update({"model_delay_p50_seconds": 0.0, "model_delay_p99_seconds": 0.0, "model_bytes_per_second": 0.0})
    print(json.dumps(result), flush=True)
    return result


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    one = report["runs"][0]
    lines = [
        "# Scale-out: one instance against a trainer and N scorers", "",
        f"- machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, every process 1 torch thread; "
        f"{machine.get('date', '')}; broker on the same machine; load average (1 min) "
        f"{(machine.get('load_average') or [0])[0]:.1f} at start, {(machine.get('load_average_end') or [0])[0]:.1f} "
        "at end",
        f"- log: `{report['dataset']}`, {one['events']} events produced live at {report['rate']} events/s into "
        f"{PARTITIONS} partitions; encoder {report['encoder']}; snapshots at most every {report['interval']} s",
        f"- command: `{report['command']}`", "",
        "| setup | hit@10 | ndcg@10 | vs one instance | events per serving process | trainer events | "
        "model bytes/s | model delay p50 / p99 (s) | caught up after (s) |",
        "|---|---:|---:|---:|---|---:|---:|---|---:|"]
    for run in report["runs"]:
        delay = (f"{run['model_delay_p50_seconds']:.1f} / {run['model_delay_p99_seconds']:.1f}"
                 if run.get("model_delay_p50_seconds") is not None else "n/a")
        lines.append(f"| {run['setup']} | {run['hit@10']:.4f} | {run['ndcg@10']:.4f} | "
                     f"{run['hit@10'] / max(one['hit@10'], 1e-9):.3f}x | {run['events_encoded']} | "
                     f"{run.get('trainer_events') or '-'} | {run['model_bytes_per_second']:,.0f} | {delay} | "
                     f"{run['caught_up_seconds']:.0f} |")
    lines += ["", "Total throughput cannot scale on 2 cores shared by every process and the broker: the table "
              "shows the work each process did, which is what spreads over machines.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a log streamrec produce reads (e.g. ../shared/datasets/ml-100k)")
    parser.add_argument("--encoder", default="minilm", help="minilm | smollm2 | a model directory")
    parser.add_argument("--domain", default="video")
    parser.add_argument("--scorers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--limit", type=int, help="only the first N events")
    parser.add_argument("--rate", type=float, default=300.0, help="events per second produced")
    parser.add_argument("--interval", type=float, default=5.0, help="kafka.model_interval_seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds for the processes to start")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args()
    model, description = resolve_encoder(args.encoder, args.cache_dir)
    machine = machine_info(extra_packages=("confluent_kafka",))
    work = Path(tempfile.mkdtemp(prefix="scale-out-"))
    runs = [run_once(args, n, model, work) for n in [0, *args.scorers]]
    mark_end(machine)
    report = {"dataset": args.dataset, "encoder": description, "rate": args.rate, "interval": args.interval,
              "machine": machine, "command": " ".join(["python benchmarks/scale_out.py", *sys.argv[1:]]),
              "runs": runs, "logs": str(work)}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale-out.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "scale-out.md").write_text(markdown(report))
    print((out / "scale-out.md").read_text())


if __name__ == "__main__":
    main()
