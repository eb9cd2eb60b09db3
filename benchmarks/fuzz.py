"""Fuzzing: every decoder and loader fed a million mutated inputs; each must end as a value or a typed error.

    PYTHONPATH=.:benchmarks python benchmarks/fuzz.py                     # 1,000,000 inputs, a few minutes
    PYTHONPATH=.:benchmarks python benchmarks/fuzz.py --inputs 20000 --seed 3
    PYTHONPATH=.:benchmarks python benchmarks/fuzz.py --replay windows.restore:0:1234   # one input again

The inputs and the decoders (targets) are in :mod:`harness.fuzzing` and :mod:`harness.fuzz_files`;
input ``i`` of target ``t`` is drawn from ``random.Random(f"{seed}:{t}:{i}")``, so ``--replay``
makes it again. Each target runs in worker processes (``--jobs`` at a time), each input under a
watchdog: one that takes longer than ``--hang-seconds`` is a hang, its worker is killed and a new
one resumes after that input; a worker that dies (a segfault) is a crash of its input. Outcomes:

* ``accepted``: a value, which also passes the next stage (re-encoded the way streamrec writes it,
  stored in and restored from a window snapshot; items onto the items topic and back);
* ``typed``: the target's StreamrecError subclass, counted by its ``reason``, with a message;
* ``crash``: any other exception (the first examples kept, each with a ``--replay`` key);
* ``broken``: accepted, but the next stage fails on the value (or an error's dead letter does not fit);
* ``hang``.

Resident memory (RSS) is sampled in every worker every 2000 inputs: first sample, halfway, last, peak.
Writes benchmarks/results/fuzz.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from harness.fuzzing import DECODERS, SHARES, Target, make_target
from harness.machine import current_load_average, machine_info, mark_end

RESULTS = Path(__file__).resolve().parent / "results"
FLUSH_EVERY = 2000  # inputs between a worker's reports and RSS samples
CHUNK = 250_000  # inputs per worker process at most
EXAMPLES_PER_KIND = 2
RSS_KEYS = ("first", "mid", "last", "peak")  # a worker's first RSS sample, the one halfway, its last, its largest


def rss_mb() -> float:
    """This process's resident memory now, MB."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource  # no /proc: the peak is the best there is

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process ``pid`` has used so far; None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def where(error: BaseException) -> str:
    """The innermost streamrec line the error came through (else the innermost line)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/streamrec/" in f.filename] or frames
    if not ours:
        return "?"
    frame = ours[-1]
    name = frame.filename
    name = name.split("/streamrec/")[-1] if "/streamrec/" in name else "benchmarks/" + name.split("/benchmarks/")[-1]
    return f"{name}:{frame.lineno} in {frame.name}"


def run_one(target: Target, value: Any) -> tuple[str, BaseException | None]:
    """``(outcome, error)``: ``accepted``, ``typed:<reason>``, ``crash`` or ``broken``."""
    try:
        result = target.decode(value)
    except target.typed as exc:
        try:
            target.check_error(exc, value)
        except Exception as bad:
            return "broken", bad
        return f"typed:{getattr(exc, 'reason', type(exc).__name__)}", None
    except Exception as exc:
        return "crash", exc
    try:
        target.check(result, value)
    except Exception as exc:
        return "broken", exc
    return "accepted", None


def input_rng(seed: int, name: str, index: int) -> random.Random:
    return random.Random(f"{seed}:{name}:{index}")


def work(name: str, seed: int, start: int, stop: int, skip: frozenset[int], beat: Any, conn: Connection,
         root: Path) -> None:
    """A worker: inputs ``start``..``stop`` of ``name`` (less ``skip``), reported every FLUSH_EVERY."""
    logging.disable(logging.CRITICAL)  # what the loaders log about each bad input (millions of lines)
    home = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    try:
        target = make_target(name, home)
        run_one(target, target.make(random.Random(-1)))  # warm up: the imports a first decode makes, uncounted
        counts: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        examples: dict[str, list[dict[str, Any]]] = {}
        slowest, slowest_cpu, slowest_key = 0.0, 0.0, ""
        for index in range(start, stop):
            if index not in skip:
                beat[0] = index
                try:
                    value = target.make(input_rng(seed, name, index))
                except Exception:  # the generator's bug, not a decoder's: stop the run
                    conn.send(("error", index, {}, {}, {}, 0.0, traceback.format_exc()))
                    return
                beat[2], beat[1] = time.process_time(), time.monotonic()
                outcome, error = run_one(target, value)
                slowest = max(slowest, time.monotonic() - beat[1])
                if time.process_time() - beat[2] > slowest_cpu:
                    slowest_cpu, slowest_key = time.process_time() - beat[2], f"{name}:{seed}:{index}"
                beat[1] = 0.0
                counts[outcome] += 1
                if error is not None:
                    kind = f"{outcome}: {type(error).__name__} at {where(error)}"
                    kinds[kind] += 1
                    if kinds[kind] <= EXAMPLES_PER_KIND:
                        examples.setdefault(kind, []).append({"replay": f"{name}:{seed}:{index}",
                                                              "error": f"{type(error).__name__}: {error}"[:300],
                                                              "input": repr(value)[:300]})
            if (index + 1 - start) % FLUSH_EVERY == 0 or index == stop - 1:
                conn.send(("progress", index + 1, dict(counts), dict(kinds), examples,
                           (slowest, slowest_cpu, slowest_key), rss_mb()))
                counts, kinds, examples = Counter(), Counter(), {}
        conn.send(("done", stop, {}, {}, {}, (slowest, slowest_cpu, slowest_key), rss_mb()))
    finally:
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class Tally:
    """One target's results, summed over its workers."""

    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    slowest_s: float = 0.0  # wall
    slowest_cpu_s: float = 0.0
    slowest_replay: str = ""
    rss: list[tuple[float, float, float, float]] = field(default_factory=list)  # per worker: first, mid, last, peak

    def add(self, counts: dict[str, int], kinds: dict[str, int], examples: dict[str, list[dict[str, Any]]]) -> None:
        self.outcomes.update(counts)
        self.kinds.update(kinds)
        self.inputs += sum(counts.values())
        for kind, found in examples.items():
            kept = self.examples.setdefault(kind, [])
            kept.extend(found[:EXAMPLES_PER_KIND - len(kept)])


@dataclass
class Worker:
    name: str
    start: int
    stop: int
    skip: frozenset[int]
    process: Any = None
    conn: Any = None
    beat: Any = None
    done_to: int = 0  # inputs below this are reported
    rss: list[float] = field(default_factory=list)


def is_hung(worker: Worker, limit: float) -> bool:
    """Whether the worker's input has taken more than ``limit`` seconds of CPU (of wall time where
    /proc is missing, or ten times that in wall time: a worker stuck waiting). CPU time, so that a
    busy machine does not turn a slow input into a hang."""
    started, cpu_started = worker.beat[1], worker.beat[2]
    wall = time.monotonic() - started if started else 0.0
    if wall <= limit:
        return False
    cpu = cpu_seconds(worker.process.pid)
    return cpu is None or cpu - cpu_started > limit or wall > 10 * limit


def run(args: argparse.Namespace) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    plan = {name: max(1, round(args.inputs * share)) for name, share in SHARES.items() if name in args.targets}
    # the slow file targets (last in SHARES) first, so that they overlap the fast ones
    pending = deque(Worker(name, lo, min(lo + CHUNK, n), frozenset()) for name, n in reversed(plan.items())
                    for lo in range(0, n, CHUNK))
    tallies = {name: Tally() for name in plan}
    running: list[Worker] = []
    root = Path(tempfile.mkdtemp(prefix="streamrec-fuzz-"))  # the workers' files (a killed one leaves its own)
    load_at_start = current_load_average()  # (machine_info, which imports torch, only at the end: no torch to fork)
    began = last_print = time.monotonic()
    total = sum(plan.values())
    while pending or running:
        while pending and len(running) < args.jobs:
            worker = pending.popleft()
            reader, writer = ctx.Pipe(duplex=False)
            # beat: the input being decoded, and when it began (wall; 0: none) and at what CPU time
            worker.beat, worker.conn, worker.done_to = ctx.Array("d", 3, lock=False), reader, worker.start
            worker.process = ctx.Process(target=work, args=(worker.name, args.seed, worker.start, worker.stop,
                                                            worker.skip, worker.beat, writer, root), daemon=True)
            worker.process.start()
            writer.close()
            running.append(worker)
        wait([w.conn for w in running], timeout=0.2)
        for worker in list(running):
            tally, finished = tallies[worker.name], False
            alive = worker.process.is_alive()  # before reading: a worker gone by now has said all it will
            try:
                while worker.conn.poll():
                    message, done_to, counts, kinds, examples, slowest, rss = worker.conn.recv()
                    if message == "error":
                        sys.exit(f"making input {worker.name}:{args.seed}:{done_to} failed:\n{rss}")
                    tally.add(counts, kinds, examples)
                    tally.slowest_s = max(tally.slowest_s, slowest[0])
                    if slowest[1] > tally.slowest_cpu_s:
                        tally.slowest_cpu_s, tally.slowest_replay = slowest[1], slowest[2]
                    worker.done_to, finished = done_to, message == "done"
                    worker.rss.append(rss)
            except (EOFError, OSError):
                pass
            hung = is_hung(worker, args.hang_seconds)
            if finished or hung or not alive:
                if not finished:  # a hang, or a worker that died: that input is the failure, the rest goes on
                    index = int(worker.beat[0])
                    worker.process.kill()
                    outcome = "hang" if hung else "crash"
                    kind = f"{outcome}: worker {'killed after ' + str(args.hang_seconds) + ' s' if hung else 'died'}"
                    tally.add({outcome: 1}, {kind: 1}, {kind: [{"replay": f"{worker.name}:{args.seed}:{index}"}]})
                    pending.appendleft(Worker(worker.name, worker.done_to, worker.stop, worker.skip | {index}))
                worker.process.join()
                worker.conn.close()
                if worker.rss:
                    tally.rss.append((worker.rss[0], worker.rss[len(worker.rss) // 2], worker.rss[-1],
                                      max(worker.rss)))
                running.remove(worker)
        if time.monotonic() - last_print > 10 or not (pending or running):
            last_print = time.monotonic()
            done = sum(t.inputs for t in tallies.values())
            bad = {o: sum(t.outcomes[o] for t in tallies.values()) for o in ("crash", "broken", "hang")}
            print(f"{done:>9,}/{total:,} inputs  {done / (last_print - began):>7,.0f}/s  crashes {bad['crash']}  "
                  f"broken {bad['broken']}  hangs {bad['hang']}", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    machine = machine_info(["msgpack", "safetensors"])
    machine["load_average"] = load_at_start
    return report(args, tallies, time.monotonic() - began, machine)


def report(args: argparse.Namespace, tallies: dict[str, Tally], seconds: float,
           machine: dict[str, Any]) -> dict[str, Any]:
    def rss(values: list[tuple[float, float, float, float]]) -> dict[str, float]:
        return {key: round(max(v[i] for v in values), 1) for i, key in enumerate(RSS_KEYS)} if values else {}

    targets: dict[str, dict[str, Any]] = {}
    for name, tally in tallies.items():
        typed = {k.split(":", 1)[1]: n for k, n in sorted(tally.outcomes.items()) if k.startswith("typed:")}
        targets[name] = {"decoder": DECODERS[name], "inputs": tally.inputs, "accepted": tally.outcomes["accepted"],
                         "typed_errors": typed, "crashes": tally.outcomes["crash"], "broken": tally.outcomes["broken"],
                         "hangs": tally.outcomes["hang"], "slowest_input_s": round(tally.slowest_s, 4),
                         "slowest_input_cpu_s": round(tally.slowest_cpu_s, 4), "slowest_replay": tally.slowest_replay,
                         "rss_mb": rss(tally.rss), "failures": dict(tally.kinds.most_common()),
                         "examples": tally.examples}
    every = [v for t in tallies.values() for v in t.rss]
    return {"benchmark": "fuzz", "command": " ".join(sys.argv), "seed": args.seed,
            "inputs": sum(t["inputs"] for t in targets.values()),
            "crashes": sum(t["crashes"] for t in targets.values()),
            "hangs": sum(t["hangs"] for t in targets.values()),
            "broken": sum(t["broken"] for t in targets.values()),
            "accepted": sum(t["accepted"] for t in targets.values()),
            "typed_errors": sum(sum(t["typed_errors"].values()) for t in targets.values()),
            "hang_seconds": args.hang_seconds, "seconds": round(seconds, 1), "rss_mb": rss(every),
            "targets": targets, "machine": mark_end(machine)}


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [f"# Fuzzing: {result['inputs']:,} inputs, {result['crashes']} crashes, {result['hangs']} hangs, "
             f"{result['broken']} broken", "",
             f"`{result['command']}` (seed {result['seed']}), {result['seconds']:.0f} s on {machine['cpu']} "
             f"({machine['cores']} cores), {machine['date']}. A hang: one input over {result['hang_seconds']} s "
             "of CPU. RSS: each worker's first sample (after 2000 inputs), the one halfway, its last and its "
             "peak, the largest over the target's workers.", "",
             "| target | inputs | accepted | typed errors | crashes | broken | hangs | slowest input CPU (wall) "
             "| RSS MB first/mid/last/peak |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for name, t in result["targets"].items():
        typed = ", ".join(f"{reason} {n:,}" for reason, n in t["typed_errors"].items())
        memory = "/".join(f"{t['rss_mb'][k]:.0f}" for k in RSS_KEYS) if t["rss_mb"] else "-"
        slowest = f"{t['slowest_input_cpu_s'] * 1000:.0f} ms ({t['slowest_input_s'] * 1000:.0f})"
        lines.append(f"| {name} | {t['inputs']:,} | {t['accepted']:,} | {typed} | {t['crashes']:,} | {t['broken']:,} "
                     f"| {t['hangs']} | {slowest} | {memory} |")
    lines += ["", "Targets: " + "; ".join(f"**{name}** {t['decoder']}" for name, t in result["targets"].items()) + ".",
              "", "Outcomes: *accepted*, and the value passes the next stage (re-encoded as streamrec writes it, "
              "stored in and restored from a window snapshot; items onto the items topic and back); *typed errors*: "
              "the target's StreamrecError, by reason, with a message; *crash*: any other exception; *broken*: "
              "accepted, but the next stage fails on the value (its location is where that stage failed, not the "
              "decoder that let the value through); *hang*: one input over the limit (the worker is killed, a new "
              "one goes on after it)."]
    failures = [(name, kind, n) for name, t in result["targets"].items() for kind, n in t["failures"].items()]
    if failures:
        lines += ["", "## Failures (replay one with `--replay KEY`)", "", "| target | failure | inputs | replay |",
                  "|---|---|---:|---|"]
        for name, kind, n in failures:
            example = result["targets"][name]["examples"].get(kind, [{}])[0]
            lines.append(f"| {name} | {kind.replace('|', '/')} | {n:,} | `{example.get('replay', '')}` |")
    return "\n".join(lines) + "\n"


def replay(key: str) -> None:
    name, seed, index = key.rsplit(":", 2)
    with tempfile.TemporaryDirectory() as home:
        target = make_target(name, Path(home))
        value = target.make(input_rng(int(seed), name, int(index)))
        print("input:", repr(value)[:2000])
        outcome, error = run_one(target, value)
        print("outcome:", outcome)
        if error is not None:
            traceback.print_exception(error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs over all targets (shares: SHARES)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes at a time")
    parser.add_argument("--hang-seconds", type=float, default=2.0, help="one input longer than this is a hang")
    parser.add_argument("--targets", nargs="+", choices=list(SHARES), default=list(SHARES),
                        help="only these targets (each still gets its share of --inputs)")
    parser.add_argument("--replay", help="TARGET:SEED:INDEX: make and run that one input, with its traceback")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.replay:
        replay(args.replay)
        return
    result = run(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "fuzz.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "fuzz.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
