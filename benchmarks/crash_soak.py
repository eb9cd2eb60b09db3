"""A long crash soak (issue #31): kill -9 the Kafka service at random moments over a long log, for
at-least-once and for ``--exactly-once``, and count what came out. Writes
benchmarks/results/crash-soak.{json,md}.

    python benchmarks/crash_soak.py --bootstrap 127.0.0.1:9192 --events 100000 --kills 20 --mode both

tests/kafka/test_crash.py at scale, with its helpers (``tests/kafka/kafkakit.py``) and tiny GPT-2.
Per mode: fresh topics (3 partitions), the log produced first, then ``streamrec run`` started,
killed (SIGKILL) and restarted ``--kills`` times, then a clean run to the end (SIGTERM). Kill k
lands once the committed offsets pass a random point of the k-th slice of the log, plus a random
0 to ``--max-delay`` s; every ``--aim-every``-th kill instead when a batch is written but not
committed (:class:`Watch`), so the redo and aborted-transaction paths surely run. Counted from
the output topic read ``read_committed``:

* lost: events no later recommendation for their user covers (same partition, source offset >=
  the event's); must be 0;
* duplicates: recommendations whose source offset an earlier one for the user already covered;
  at-least-once at most ``kills * batch.max_size`` (one uncommitted batch per kill), also per
  restart (attributed by the output end offsets at each kill); exactly-once 0;
* aborted records (exactly-once): records read ``read_uncommitted`` but not ``read_committed``;
* windows: the final changelog record per user, restored, against a crash-free WindowStore;
* committed offsets == end offsets of the input.

A failed run is recorded with its error; the logs are kept (``logs``). Needs a broker of its own.
"""

# ruff: noqa: E402  (imports after sys.path names this checkout and tests/kafka)
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# This checkout's streamrec (the venv's editable install may point elsewhere) and kafkakit.
sys.path[:0] = [str(REPO), str(REPO / "tests" / "kafka")]

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafkakit import N_ITEMS, KafkaKit, Record, ServiceProcess, make_log, reference_windows

from harness.machine import machine_info, mark_end
from streamrec.events import Event
from streamrec.synthetic import generate
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus
from streamrec.windows import WindowStore

Failed = pytest.fail.Exception  # what KafkaKit.wait_for raises on a timeout or a dead service


def tiny_model(work: Path) -> Path:  # the kafka tests' (tests/kafka/conftest.py: tiny_model)
    items = generate(n_users=1, n_items=N_ITEMS, seed=0).items
    return build_tiny_gpt2(tokenizer_corpus(items), work / "tiny-gpt2", n_layer=1, n_embd=32, n_head=2)


def soak_log(n_events: int, seed: int) -> list[Event]:
    users = math.ceil(n_events / 28)
    while len(events := make_log(n_users=users, events_per_user=(20, 40), seed=seed)) < n_events:
        users += users // 10 + 1
    return events[:n_events]


def differing_users(actual: WindowStore, expected: WindowStore) -> list[str]:
    users = set(actual.users()) | set(expected.users())
    return sorted(u for u in users if actual.window(u) != expected.window(u)
                  or list(actual.seen_items(u)) != list(expected.seen_items(u)))


def run_of(record: Record, ends_at_kills: list[dict[int, int]]) -> int:
    """Which run wrote ``record``: k < kills for the k-th killed run, kills for the final one."""
    return next((k for k, ends in enumerate(ends_at_kills) if record.offset < ends.get(record.partition, 0)),
                len(ends_at_kills))


def count_output(records: list[Record], last_event: dict[str, tuple[int, int]], offsets: list[dict[str, Any]],
                 ends_at_kills: list[dict[int, int]]) -> dict[str, Any]:
    """Coverage and duplicates over output records (in partition, offset order: per user, in order)."""
    covered: dict[str, int] = defaultdict(lambda: -1)
    duplicates, wrong_partition = 0, 0
    per_run = [0] * (len(ends_at_kills) + 1)
    for record in records:
        rec = record.recommendation()
        partition, offset = rec.source["partition"], rec.source["offset"]
        if partition != last_event[rec.user_id][0]:
            wrong_partition += 1
            continue
        if offset <= covered[rec.user_id]:
            duplicates += 1
            per_run[run_of(record, ends_at_kills)] += 1
        covered[rec.user_id] = max(covered[rec.user_id], offset)
    lost = [e for e in offsets if covered[e["user"]] < e["offset"]]
    lost_users = sorted({e["user"] for e in lost})
    return {"recommendations": len(records), "duplicates": duplicates, "wrong_partition": wrong_partition,
            "duplicates_per_restart": per_run[1:], "duplicates_first_run": per_run[0], "lost": len(lost),
            "lost_users": len(lost_users),
            "lost_examples": [{"user": u, "last_offset": last_event[u][1], "covered_to": covered[u]}
                              for u in lost_users[:20]]}


class Watch:
    """Aims a kill at a batch written but not committed, looking while the service is frozen
    (SIGSTOP): exactly-once, an open transaction on the output (high watermark past the last stable
    offset); at-least-once, recommendations out but windows not (output grown, changelog not, since
    the input's committed offsets last moved: a redo repeats them). What it sees must hold for 0.2 s
    (a request already sent completes meanwhile)."""

    def __init__(self, bootstrap: str, group: str, topic: str, output: str, exactly_once: bool) -> None:
        config = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        self.uncommitted = Consumer({**config, "isolation.level": "read_uncommitted"})
        self.committed = Consumer({**config, "isolation.level": "read_committed"})
        self.inputs = [TopicPartition(topic, p) for p in range(3)]
        self.outputs = [TopicPartition(output, p) for p in range(3)]
        self.changelog = [TopicPartition(f"{group}-windows-changelog", p) for p in range(3)]
        self.exactly_once = exactly_once
        self.seen: tuple[list[int], ...] | None = None  # committed inputs, output and changelog ends then

    def high(self, consumer: Consumer | None = None, topic: list[TopicPartition] | None = None) -> list[int]:
        """End offsets (of the output), open transactions' records included (read_committed: the LSO)."""
        return [(consumer or self.uncommitted).get_watermark_offsets(tp, timeout=10)[1] for tp in topic or self.outputs]

    def pending(self) -> list[int] | None:
        """What holds a batch uncommitted now, None if nothing."""
        high = self.high()
        if self.exactly_once:
            stable = self.high(self.committed)
            return stable if stable != high else None
        moved = [tp.offset for tp in self.uncommitted.committed(self.inputs, timeout=10)]
        windows = self.high(topic=self.changelog)
        if self.seen is None or moved != self.seen[0]:
            self.seen = (moved, high, windows)
        return moved if high != self.seen[1] and windows == self.seen[2] else None

    def holds(self, found: list[int], seconds: float) -> bool:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if self.pending() != found:
                return False
        return True

    def aim(self, timeout: float, service: ServiceProcess) -> bool:
        """True: a batch in flight, the service left frozen to be killed; False after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not service.alive():
                raise RuntimeError(f"service exited while aiming a kill:\n{service.log()[-3000:]}")
            service.proc.send_signal(signal.SIGSTOP)
            found = self.pending()
            if found is not None and self.holds(found, 0.2):
                return True
            service.proc.send_signal(signal.SIGCONT)
            time.sleep(random.uniform(0.005, 0.025))  # let it run a little: a random moment to look again
        return False

    def close(self) -> None:
        self.uncommitted.close()
        self.committed.close()


def aborted(kit: KafkaKit, topic: str) -> list[Record]:
    """Records ``read_uncommitted`` returns and ``read_committed`` does not: aborted transactions."""
    committed = {(r.partition, r.offset) for r in kit.read_all(topic, "read_committed", timeout=300)}
    return [r for r in kit.read_all(topic, "read_uncommitted", timeout=300) if (r.partition, r.offset) not in committed]


def soak(kit: KafkaKit, rng: random.Random, events: list[Event], mode: str, args: argparse.Namespace
         ) -> dict[str, Any]:
    exactly_once = mode == "exactly-once"
    started = time.monotonic()
    topic = kit.create_topic("soak-events", 3)
    where = kit.produce_events(topic, events)
    produced_s = time.monotonic() - started
    output = kit.create_topic("soak-recs", 3)
    group = kit.name("soak-group")
    extra: dict[str, Any] = {"transactional_id": kit.name("soak-txn")} if exactly_once else {}
    values = kit.settings(input_topic=topic, output_topic=output, group=group, dead_letter_topic=kit.name("dlq"),
                          config={"consumer.group.instance.id": kit.name("member")}, **extra)
    values["kafka"]["checkpoint_interval_seconds"] = 2
    values["batch"]["max_size"] = args.batch_size
    values["metrics_address"] = ""  # no port to share with other services on this machine
    config, settings = kit.write_config(values)
    cli = ["--exactly-once"] if exactly_once else []
    changelog = f"{group}-windows-changelog"
    result: dict[str, Any] = {"mode": mode, "kills": 0, "kills_planned": args.kills, "events": len(events),
                              "batch_max_size": args.batch_size, "input_topic": topic, "output_topic": output,
                              "group": group, "logs": str(kit.tmp_path), "produce_seconds": produced_s,
                              "kill_log": []}
    ends_at_kills: list[dict[int, int]] = []

    def committed_total() -> int:
        return sum(max(0, o) for o in kit.committed(group, topic).values())

    soak_started = time.monotonic()
    watch = Watch(kit.bootstrap, group, topic, output, exactly_once)
    try:
        for kill in range(args.kills):
            target = len(events) * (kill + rng.uniform(0.3, 0.9)) / (args.kills + 1)
            t0 = time.monotonic()
            service = kit.start(config, *cli, name=f"killed{kill}")
            kit.wait_for(lambda t=target: committed_total() >= t,  # type: ignore[misc]
                         f"the service to commit {target:.0f} events", args.timeout, [service])
            aimed = args.aim_every > 0 and kill % args.aim_every == args.aim_every - 1
            if aimed:
                delay, hit = 0.0, watch.aim(60, service)
            else:
                delay, hit = rng.uniform(0.0, args.max_delay), None
                time.sleep(delay)  # the random moment itself, not a wait for a condition
            service.kill()
            ends_at_kills.append(dict(enumerate(watch.high())))
            done = committed_total()
            result["kills"] = kill + 1
            result["kill_log"].append({"target": round(target), "aimed": aimed, "batch_in_flight_seen": hit,
                                       "delay_s": round(delay, 3), "committed": done,
                                       "run_seconds": round(time.monotonic() - t0, 1)})
            how = f"aimed: batch in flight {'seen' if hit else 'NOT seen'}" if aimed else f"+{delay:.2f}s"
            print(f"[{mode}] kill {kill + 1} of {args.kills} after {time.monotonic() - t0:.1f}s "
                  f"({how}, past {target:.0f}): {done} of {len(events)} events committed, "
                  f"{time.monotonic() - soak_started:.0f}s in", flush=True)
            if kit.committed(group, topic) == kit.end_offsets(topic):
                raise RuntimeError(f"the run finished before kill {kill + 1}")
        t0 = time.monotonic()
        final = kit.start(config, *cli, name="final")
        kit.wait_caught_up(group, topic, [final], timeout=args.timeout)
        result["final_caught_up_seconds"] = time.monotonic() - t0
        result["final_exit_code"] = final.stop()
        print(f"[{mode}] final run caught up after {result['final_caught_up_seconds']:.1f}s, "
              f"exit {result['final_exit_code']}", flush=True)
    except (Failed, RuntimeError) as exc:
        result["error"] = str(exc)[-6000:]
        print(f"[{mode}] FAILED: {str(exc)[:2000]}", flush=True)
    finally:
        kit.cleanup()
        watch.close()
    result["soak_seconds"] = time.monotonic() - soak_started

    last_event: dict[str, tuple[int, int]] = {}
    offsets = []
    for event, (partition, offset) in zip(events, where, strict=True):
        last_event[event.user_id] = (partition, offset)
        offsets.append({"user": event.user_id, "offset": offset})
    result.update(count_output(kit.read_all(output, timeout=600), last_event, offsets, ends_at_kills))
    result["duplicate_bound"] = 0 if exactly_once else result["kills"] * args.batch_size
    result["max_duplicates_per_restart"] = max(result["duplicates_per_restart"], default=0)
    committed, ends = kit.committed(group, topic), kit.end_offsets(topic)
    result.update(committed_equals_end=committed == ends, committed_offsets=committed, end_offsets=ends)
    windows = differing_users(kit.changelog_windows(changelog, settings), reference_windows(settings, events))
    result.update(windows_equal=not windows, windows_differing_users=len(windows),
                  windows_differing_examples=windows[:20])
    left = result["duplicates_per_restart"]  # at-least-once: a batch redone after kill k
    if exactly_once:
        gone = aborted(kit, output)
        result["aborted_records"] = len(gone)
        result["aborted_changelog_records"] = len(aborted(kit, changelog))
        result["aborted_records_per_run"] = [sum(1 for r in gone if run_of(r, ends_at_kills) == k)
                                             for k in range(len(ends_at_kills) + 1)]
        left = result["aborted_records_per_run"]  # exactly-once: kill k's transaction aborted
        uncommitted = count_output(kit.read_all(output, "read_uncommitted", timeout=600), last_event, offsets,
                                   ends_at_kills)
        result["duplicates_read_uncommitted"] = uncommitted["duplicates"]
    for entry, records in zip(result["kill_log"], left, strict=False):
        entry["left_uncommitted_records"] = records
    for kind, aimed in (("random", False), ("aimed", True)):
        kills = [e for e in result["kill_log"] if e["aimed"] == aimed]
        result[f"kills_{kind}"] = len(kills)
        result[f"kills_{kind}_leaving_uncommitted"] = sum(1 for e in kills if e.get("left_uncommitted_records"))
    result["service_abort_lines"] = sum(text.count("transaction aborted: rewound")
                                        for text in (s.log() for s in kit.services))
    result["passed"] = (not result.get("error") and result["kills"] >= args.kills and result["lost"] == 0
                        and result["wrong_partition"] == 0 and result["duplicates"] <= result["duplicate_bound"]
                        and result["windows_equal"] and result["committed_equals_end"]
                        and result.get("final_exit_code") == 0)
    result["seconds"] = time.monotonic() - started
    summary = {k: result.get(k) for k in ("mode", "events", "kills", "lost", "duplicates", "duplicate_bound",
                                          "aborted_records", "windows_equal", "passed", "seconds")}
    print(f"[{mode}] {json.dumps(summary)}", flush=True)
    return result


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        "# Crash soak: kill -9 at random moments, at-least-once and exactly-once", "",
        f"- machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; {machine.get('date', '')}; "
        f"broker on the same machine; load average (1 min) {(machine.get('load_average') or [0])[0]:.1f} at start, "
        f"{(machine.get('load_average_end') or [0])[0]:.1f} at end",
        f"- log: synthetic (`make_log`, {N_ITEMS} items), 3 partitions, tiny GPT-2 (the kafka tests'), "
        f"batches of at most {report['batch_max_size']}; kill k once the committed offsets pass a random point "
        f"of the k-th slice of the log, then 0-{report['max_delay']} s more; kills {report['aim_every']}, "
        f"{2 * report['aim_every']}, ... aimed instead (below); seed {report['seed']}",
        f"- code: `{report['code']}` (the services ran a copy of streamrec/ taken at the start)",
        f"- command: `{report['command']}`", "",
        "| mode | events | kills (random + aimed) | kills whose batch output was repeated / aborted (random, aimed) "
        "| lost | duplicates (committed) | bound | max per restart | aborted records (output / changelog) | duplicates "
        "read_uncommitted | windows equal | committed = end | seconds | result |",
        "|---|---:|---|---|---:|---:|---:|---:|---|---:|---|---|---:|---|"]
    for run in report["runs"]:
        eo = run["mode"] == "exactly-once"
        lines.append(
            f"| {run['mode']} | {run['events']:,} | {run['kills']} ({run['kills_random']} + {run['kills_aimed']}) | "
            f"{run['kills_random_leaving_uncommitted']}, {run['kills_aimed_leaving_uncommitted']} | {run['lost']} | "
            f"{run['duplicates']} | {run['duplicate_bound']} | {run['max_duplicates_per_restart']} | "
            + (f"{run['aborted_records']} / {run['aborted_changelog_records']} | "
               f"{run['duplicates_read_uncommitted']} | " if eo else "- | - | ")
            + f"{run['windows_equal']} | {run['committed_equals_end']} | {run['seconds']:.0f} | "
            f"{'pass' if run['passed'] else 'FAIL'} |")
    lines += ["", "Random kills: as tests/kafka/test_crash.py. Aimed kills: past the slice point the service is "
              "frozen (SIGSTOP) every 5-25 ms until a batch is seen written but not committed for 0.2 s (exactly-once: "
              "an open transaction on the output; at-least-once: output grown, changelog not, since the input offsets "
              "last moved), then killed frozen. A kill's batch output was repeated (at-least-once: duplicates after "
              "the restart) or aborted (exactly-once: its records read_uncommitted but not read_committed; "
              "init_transactions on restart fenced and aborted the open transaction). Duplicates: recommendations "
              "whose source offset an earlier one for the user already covered; bound kills x batch.max_size.", ""]
    for run in report["runs"]:
        lines.append(f"- {run['mode']}: {run['recommendations']:,} recommendations; duplicates per restart "
                     f"{run['duplicates_per_restart']}; aborted records per run "
                     f"{run.get('aborted_records_per_run', '-')}; "
                     f"produce {run['produce_seconds']:.0f} s, kills and restarts {run['soak_seconds']:.0f} s, final "
                     f"run caught up in {run.get('final_caught_up_seconds', 0):.0f} s; the service's own abort-and-"
                     f"rewind (`transaction aborted: rewound`) logged {run['service_abort_lines']} times")
    lines.append("")
    for run in report["runs"]:
        if run.get("error"):
            lines += [f"**{run['mode']} failed**: `{run['error'][:500]}` (logs: {run['logs']})", ""]
        if run["lost"] or run["windows_differing_users"]:
            lines += [f"**{run['mode']}**: lost {run['lost']} events of {run['lost_users']} users "
                      f"({run['lost_examples'][:5]}); windows differ for {run['windows_differing_users']} users "
                      f"({run['windows_differing_examples'][:5]}); logs: {run['logs']}", ""]
    return "\n".join(lines)


def code_version(root: Path) -> str:
    """HEAD, and a hash of ``root``/streamrec/*.py (the working tree may differ from HEAD)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    digest = hashlib.sha256()
    for path in sorted((root / "streamrec").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return f"{head.stdout.strip()}, streamrec/*.py sha256 {digest.hexdigest()[:16]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("STREAMREC_TEST_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--mode", choices=["at-least-once", "exactly-once", "both"], default="both")
    parser.add_argument("--exactly-once-events", type=int, help="events for exactly-once (default --events)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch.max_size (test_crash's)")
    parser.add_argument("--max-delay", type=float, default=0.3, help="random seconds after the slice point")
    parser.add_argument("--aim-every", type=int, default=2, help="every N-th kill aimed at a batch in flight (0: none)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for one run to reach its point")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args()
    import streamrec

    assert Path(streamrec.__file__).resolve().is_relative_to(REPO), f"streamrec from {streamrec.__file__}"
    machine = machine_info(extra_packages=("confluent_kafka", "librdkafka"))
    work = Path(tempfile.mkdtemp(prefix="crash-soak-"))
    # The services run a copy of this checkout's streamrec/ (not the venv's editable install, which may point
    # elsewhere, nor files others edit during the run).
    shutil.copytree(REPO / "streamrec", work / "code" / "streamrec", ignore=shutil.ignore_patterns("__pycache__"))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(work / "code"), *filter(None, [os.environ.get("PYTHONPATH")])])
    code = code_version(work / "code")
    model = tiny_model(work)
    modes = ["at-least-once", "exactly-once"] if args.mode == "both" else [args.mode]
    runs = []
    for n, mode in enumerate(modes):
        count = args.exactly_once_events if mode == "exactly-once" and args.exactly_once_events else args.events
        events = soak_log(count, seed=args.seed + n)
        print(f"[{mode}] {len(events)} events, {args.kills} kills, logs in {work / mode}", flush=True)
        (work / mode).mkdir()
        runs.append(soak(KafkaKit(args.bootstrap, model, work / mode), random.Random(args.seed + n), events,
                         mode, args))
    mark_end(machine)
    report = {"machine": machine, "command": " ".join(["python benchmarks/crash_soak.py", *sys.argv[1:]]),
              "code": code, "bootstrap": args.bootstrap, "seed": args.seed, "max_delay": args.max_delay,
              "aim_every": args.aim_every, "batch_max_size": args.batch_size, "logs": str(work), "runs": runs}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crash-soak.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "crash-soak.md").write_text(markdown(report))
    print((out / "crash-soak.md").read_text())
    sys.exit(0 if all(r["passed"] for r in runs) else 1)


if __name__ == "__main__":
    main()
