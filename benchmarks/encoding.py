"""Window-encoding benchmark: the naive full re-encode against each optimisation alone and all combined.

    .venv/bin/python benchmarks/encoding.py                      # CPU: about 15 min on 2 busy cores
    .venv/bin/python benchmarks/encoding.py --device cuda --dtype bfloat16 --pool 1024 --prefill 70000 \
        --warmup 8192 --events 65536 --naive-events 4096 --micro-batch 2048 --batch-size 256 \
        --kv-cache-bytes 48000000000 --replay --replay-events 65536   # one GPU (H100: 80 GB)

Writes ``benchmarks/results/encoding.json`` and ``encoding.md`` (``--out-dir``). Every variant
runs in its own process (clean peak RSS / GPU memory) on the same log and the same model:

* model: GPT-2 small's shape (``GPT2Config()``: 12 layers, 768 wide, 1024 positions, 50257-row
  embedding) with random weights, and a byte-level BPE tokenizer trained on the catalogue
  (vocabulary 1000, so an event is about 12 tokens, as with the real GPT-2 tokenizer);
* log: per-user sequences and titles from :func:`streamrec.synthetic.generate`, interleaved so
  that ``--pool`` users are active at any time (users leave and new ones arrive); windows are
  prefilled so most hold N = 50 events, then stateful variants warm up, then the clock runs.

Reported per variant: encoder positions (tokens) per event, events/s, p50/p99 micro-batch
encode latency, peak RSS (and GPU memory), and the largest ``|v - ref| / |ref|`` over sampled
user vectors, where ``ref`` is a separate unbatched full forward over exactly the events that
vector reads (chunked token ids; item mode: item-mode full forward).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from harness.machine import current_load_average, load_average, machine_info, version
from streamrec.catalog import Catalog, Item
from streamrec.config import EncoderSettings
from streamrec.events import Event
from streamrec.synthetic import generate
from streamrec.text import TextTemplate
from streamrec.windows import WindowStore

RESULTS = Path(__file__).resolve().parent / "results"
N_EVENTS = 50


@dataclass(frozen=True)
class Variant:
    title: str
    per_event: bool = True  # encode after every event (False: once per touched user per micro-batch)
    cache: bool = False  # keep KV caches (incremental)
    bucketing: bool = False
    compile: bool = False
    mode: str = "text"  # "item": one position per event
    joined_text: bool = False  # today's TextWindowEncoder (joined string tokenized at once)
    share: float = 0.0  # measured on this share of --events (0: on --naive-events, for slow stateless variants)


VARIANTS = {
    "naive": Variant("naive: full re-encode per event (chunked ids)"),
    "naive-text": Variant("naive, joined-string tokenization (TextWindowEncoder)", joined_text=True),
    "dedupe": Variant("dedupe: one full re-encode per user per micro-batch", per_event=False),
    "bucketing": Variant("length-bucketed batches", bucketing=True),
    "compile": Variant("torch.compile", compile=True),
    "incremental": Variant("incremental KV cache", cache=True, share=0.5),
    "item": Variant("item mode (1 position/event), full re-encode", mode="item", share=0.25),
    "combined": Variant("combined: dedupe + bucketing + incremental", per_event=False, cache=True,
                        bucketing=True, share=1.0),
    "combined-item": Variant("combined, item mode", per_event=False, cache=True, bucketing=True, mode="item",
                             share=1.0),
}


# -- setup -------------------------------------------------------------------------------------


def build_log(total: int, pool: int, seed: int) -> tuple[list[Event], list[Item]]:
    """``generate``'s per-user sequences, interleaved with ``pool`` users active at any time."""
    per_user = 200
    base = generate(n_users=total // per_user + pool + 1, n_items=2000, events_per_user=(150, 250), seed=seed)
    sequences: dict[str, list[Event]] = {}
    for event in base.events:
        sequences.setdefault(event.user_id, []).append(event)
    queue = list(sequences.values())
    rng = random.Random(seed)
    active = [queue.pop() for _ in range(pool)]
    events: list[Event] = []
    t = 1_700_000_000_000
    while active and len(events) < total:
        slot = rng.randrange(len(active))
        source = active[slot].pop(0)
        t += rng.randint(1_000, 30_000)
        events.append(Event(source.user_id, source.item_id, source.action, t, f"e{len(events)}"))
        if not active[slot]:
            active[slot:slot + 1] = [queue.pop()] if queue else []
    return events, base.items


def build_model(model_dir: Path, items: list[Item]) -> Path:
    """GPT-2 small's shape with random weights, and a catalogue-trained BPE tokenizer (cached)."""
    marker = model_dir / "streamrec-bench.json"
    if marker.exists():
        return model_dir
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    from streamrec.tinymodel import tokenizer_corpus

    model_dir.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(tokenizer_corpus(items), vocab_size=1000, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                        model_max_length=1024)
    tokenizer.save_pretrained(model_dir)
    torch.manual_seed(0)
    config = GPT2Config(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2Model(config).save_pretrained(model_dir)
    marker.write_text(json.dumps({"config": "GPT2Config()", "tokenizer_vocab": 1000}))
    return model_dir


# -- one variant (in a child process) ------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def _rounds(batch: list[Event], store: WindowStore) -> list[tuple[list[str], list[list[Event]]]]:
    """Per-event encoding: each event's window, split in calls where a user appears once, in order."""
    calls: list[tuple[list[str], list[list[Event]]]] = []
    seen: Counter[str] = Counter()
    for event in batch:
        store.add(event)
        r = seen[event.user_id]
        seen[event.user_id] += 1
        if r == len(calls):
            calls.append(([], []))
        calls[r][0].append(event.user_id)
        calls[r][1].append(list(store.window(event.user_id)))
    return calls


def _stateless_call(batch: list[Event], store: WindowStore) -> list[tuple[list[str], list[list[Event]]]]:
    """Stateless per-event encoding: all of a batch's windows in one call (keys made unique)."""
    users, windows = [], []
    for n, event in enumerate(batch):
        store.add(event)
        users.append(f"{event.user_id}#{n}")
        windows.append(list(store.window(event.user_id)))
    return [(users, windows)]


def _deduped(batch: list[Event], store: WindowStore) -> list[tuple[list[str], list[list[Event]]]]:
    for event in batch:
        store.add(event)
    users = list(dict.fromkeys(e.user_id for e in batch))
    return [(users, [list(store.window(u)) for u in users])]


def run_variant(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from streamrec.encoding import HFEncoder, IncrementalWindowEncoder, TextWindowEncoder

    variant = VARIANTS[name]
    settings = EncoderSettings(model=str(args.model_dir), device=args.device, dtype=args.dtype,
                               threads=args.threads, max_length=1024, batch_size=args.batch_size)
    encoder = HFEncoder(settings)
    events, items = build_log(args.prefill + args.warmup + args.events, args.pool, args.seed)
    catalog, template = Catalog(items), TextTemplate.english()
    window_encoder: Any
    if variant.joined_text:
        window_encoder = TextWindowEncoder(encoder, template, catalog)
    else:
        window_encoder = IncrementalWindowEncoder(
            encoder, template, catalog, max_events=N_EVENTS, slack_events=args.slack if variant.cache else 0,
            kv_cache_bytes=args.kv_cache_bytes if variant.cache else 0, mode=variant.mode,
            bucketing=variant.bucketing, compile=variant.compile)
    store = WindowStore(max_events=N_EVENTS, horizon_ms=10**15, max_users=10**6)
    for event in events[:args.prefill]:
        store.add(event)
    measured_n = int(args.events * variant.share) if variant.share else args.naive_events
    warm = events[args.prefill:args.prefill + (args.warmup if variant.cache else args.micro_batch // 4)]
    measured = events[args.prefill + args.warmup:args.prefill + args.warmup + measured_n]
    split = _deduped if not variant.per_event else (_rounds if variant.cache else _stateless_call)

    def positions() -> int:
        if variant.joined_text:
            return int(encoder.tokens_encoded)
        return int(window_encoder.stats.positions)

    started = time.perf_counter()
    for start in tqdm(range(0, len(warm), args.micro_batch), desc=f"{name} warm-up", leave=False):
        for users, windows in split(warm[start:start + args.micro_batch], store):
            window_encoder.encode_windows(users, windows)
    warmup_seconds = time.perf_counter() - started
    rng = random.Random(args.seed)
    latencies: list[float] = []
    samples: list[tuple[torch.Tensor, list[Event]]] = []
    window_events = windows_requested = 0
    before = positions()
    cpu_seconds = 0.0
    n_batches = -(-len(measured) // args.micro_batch)
    sample_every = max(1, n_batches // args.samples)
    per_sample = -(-args.samples // n_batches)  # users checked in each sampled batch
    for b, start in enumerate(tqdm(range(0, len(measured), args.micro_batch), desc=name, unit="batch")):
        calls = split(measured[start:start + args.micro_batch], store)
        window_events += sum(len(w) for _, windows in calls for w in windows)
        windows_requested += sum(len(users) for users, _ in calls)
        t0, c0 = time.perf_counter(), time.process_time()
        outputs = [window_encoder.encode_windows(users, windows) for users, windows in calls]
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()
        latencies.append(time.perf_counter() - t0)
        cpu_seconds += time.process_time() - c0
        if b % sample_every == 0:
            users, windows = calls[-1]
            for i in rng.sample(range(len(users)), min(per_sample, len(users))):
                if variant.cache:
                    view = [Event(users[i], item, action, ts, eid) for ts, eid, item, action in
                            window_encoder.view(users[i])]
                else:
                    view = windows[i][-N_EVENTS:]
                samples.append((outputs[-1][i].clone(), view))
    total = sum(latencies)
    measured_positions = positions() - before
    # The reference: each sampled vector's events, alone (batch of one), no cache, fresh encoder.
    reference = IncrementalWindowEncoder(encoder, template, catalog, max_events=10**6, slack_events=0,
                                         kv_cache_bytes=0, mode=variant.mode, bucketing=False)
    worst = 0.0
    for vector, view in samples:
        ref = reference.encode_windows(["ref"], [view])[0]
        worst = max(worst, float((vector - ref).norm() / ref.norm().clamp(min=1e-12)))
    result: dict[str, Any] = {
        "variant": name, "title": variant.title, "events": len(measured), "micro_batches": len(latencies),
        "layout": getattr(window_encoder, "layout", "-"),
        "events_per_second": len(measured) / total if total else 0.0,
        "positions_per_event": measured_positions / max(len(measured), 1),
        "batch_latency_p50_ms": 1000 * _percentile(latencies, 0.5),
        "batch_latency_p99_ms": 1000 * _percentile(latencies, 0.99),
        "encode_seconds": total, "cpu_seconds": cpu_seconds, "warmup_seconds": warmup_seconds,
        "events_per_cpu_second": len(measured) / cpu_seconds if cpu_seconds else 0.0,
        "mean_window_events": window_events / max(windows_requested, 1),
        "windows_encoded": windows_requested,
        "max_relative_difference": worst, "reference_samples": len(samples),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if encoder.device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if not variant.joined_text:
        stats = window_encoder.stats
        result["encoder_stats"] = {
            "resets": dict(stats.resets), "appended_events": stats.appended_events, "forwards": stats.forwards,
            "evictions": stats.evictions, "cache_bytes": stats.cache_bytes,
            "peak_cache_bytes": stats.peak_cache_bytes, "unchanged": stats.unchanged}
    return result


def _combined_state(args: argparse.Namespace, encoder: Any, events: list[Event],
                    items: list[Item]) -> tuple[Any, WindowStore, list[Event]]:
    """A fresh combined encoder and window store, prefilled and warmed up; returns the events after."""
    from streamrec.encoding import IncrementalWindowEncoder

    window_encoder = IncrementalWindowEncoder(encoder, TextTemplate.english(), Catalog(items), max_events=N_EVENTS,
                                              slack_events=args.slack, kv_cache_bytes=args.kv_cache_bytes)
    store = WindowStore(max_events=N_EVENTS, horizon_ms=10**15, max_users=10**6)
    for event in events[:args.prefill]:
        store.add(event)
    warm = events[args.prefill:args.prefill + args.warmup]
    for start in tqdm(range(0, len(warm), args.micro_batch), desc="warm-up", leave=False):
        for users, windows in _deduped(warm[start:start + args.micro_batch], store):
            window_encoder.encode_windows(users, windows)
    return window_encoder, store, events[args.prefill + args.warmup:]


def _simulate(window_encoder: Any, store: WindowStore, stream: list[Event], rate: float, adaptive: bool,
              args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Events arrive every ``1 / rate`` s in real time; batches close by the policy; returns stats, events used."""
    from streamrec.batching import AdaptiveBatchPolicy, MicroBatcher

    arrival_now = [0.0]
    policy = AdaptiveBatchPolicy(max_size=256, max_wait_ms=args.max_wait_ms, clock=lambda: arrival_now[0])
    t0 = time.monotonic()
    batcher: MicroBatcher[tuple[float, Event]] = MicroBatcher(args.micro_batch, args.max_wait_ms,
                                                              clock=lambda: time.monotonic() - t0)
    latencies: list[float] = []
    sizes: list[int] = []

    def process(batch: list[tuple[float, Event]]) -> None:
        started = time.monotonic()
        for users, windows in _deduped([e for _, e in batch], store):
            window_encoder.encode_windows(users, windows)
        done = time.monotonic()
        policy.observe_batch(len(batch), done - started)
        latencies.extend(done - t0 - arrived for arrived, _ in batch)
        sizes.append(len(batch))

    n = 0
    while time.monotonic() - t0 < args.adaptive_seconds and n < len(stream):
        now = time.monotonic() - t0
        while n < len(stream) and n / rate <= now:
            arrival_now[0] = n / rate
            if adaptive:
                policy.observe_arrivals(1)
                if not len(batcher):
                    policy.apply(batcher)
            closed = batcher.add((n / rate, stream[n]))
            n += 1
            if closed:
                process(closed)
        closed = batcher.poll()
        if closed:
            process(closed)
        elif n < len(stream):
            wait = min(n / rate - (time.monotonic() - t0), batcher.time_left() if len(batcher) else 1.0)
            time.sleep(max(0.0, min(wait, 0.05)))
    row = {"arrival_rate": rate, "policy": "adaptive" if adaptive else "fixed", "events": len(latencies),
           "backlog_at_end": n - len(latencies), "mean_batch": sum(sizes) / max(len(sizes), 1),
           "latency_p50_ms": 1000 * _percentile(latencies, 0.5),
           "latency_p99_ms": 1000 * _percentile(latencies, 0.99)}
    return row, n


def run_adaptive(args: argparse.Namespace) -> dict[str, Any]:
    """Open-loop arrivals in real time at 10%, 50% and 90% of capacity; fixed vs adaptive batching.

    Every (load, policy) run starts from the same state: fresh caches, the same warm-up, the
    same events (resets come in waves, so runs on different stretches of the log would differ).
    """
    from streamrec.encoding import HFEncoder

    encoder = HFEncoder(EncoderSettings(model=str(args.model_dir), device=args.device, dtype=args.dtype,
                                        threads=args.threads, max_length=1024, batch_size=args.batch_size))
    needed = int(0.9 * args.capacity * args.adaptive_seconds * 1.2) + args.micro_batch
    events, items = build_log(args.prefill + args.warmup + max(args.events, needed), args.pool, args.seed)
    rows = []
    for load_name, fraction in (("light", 0.1), ("busy", 0.5), ("heavy", 0.9)):
        for adaptive in (False, True):
            window_encoder, store, stream = _combined_state(args, encoder, events, items)
            row, _ = _simulate(window_encoder, store, stream, max(args.capacity * fraction, 0.5), adaptive, args)
            rows.append({"load": load_name, **row})
    return {"variant": "adaptive", "capacity_events_per_second": args.capacity, "rows": rows}


def run_replay(args: argparse.Namespace) -> dict[str, Any]:
    """End to end: the embedded replay (Pipeline.process + prequential scoring), text vs incremental."""
    from streamrec.config import load_settings
    from streamrec.encoding import HFEncoder, make_window_encoder
    from streamrec.pipeline import Pipeline
    from streamrec.replay import replay

    events, items = build_log(args.prefill + args.replay_events, args.pool, args.seed)
    out = []
    for mode in ("text", "incremental"):
        settings = load_settings(
            encoder={"model": str(args.model_dir), "device": args.device, "dtype": args.dtype,
                     "threads": args.threads, "max_length": 1024, "batch_size": args.batch_size, "mode": mode,
                     "slack_events": args.slack, "kv_cache_bytes": args.kv_cache_bytes},
            window={"max_events": N_EVENTS}, batch={"max_size": args.micro_batch}, metrics_address="")
        encoder = HFEncoder(settings.encoder)
        catalog = Catalog(items)
        pipeline = Pipeline(settings, encoder, catalog)
        pipeline.window_encoder = make_window_encoder(settings, encoder, pipeline.template, catalog)
        pipeline.item_vectors.matrix()  # item texts encoded before the clock starts
        for event in events[:args.prefill - args.warmup]:  # windows fill without encoding ...
            pipeline.windows.add(event)
        replay(pipeline, events[args.prefill - args.warmup:args.prefill], progress=False)  # ... then warm up
        metrics = replay(pipeline, events[args.prefill:], progress=True)
        out.append({"mode": mode, "events": len(events) - args.prefill,
                    "events_per_second": metrics["events_per_second"], "seconds": metrics["seconds"],
                    "hit@10": metrics["hit@10"]})
    return {"variant": "replay", "rows": out}


def run_quality(args: argparse.Namespace) -> dict[str, Any]:
    """Prequential replay quality on a MovieLens log: text mode (naive and incremental) vs item mode."""
    from streamrec.config import load_settings
    from streamrec.encoding import HFEncoder, IncrementalWindowEncoder, make_window_encoder
    from streamrec.events import ActionVocabulary
    from streamrec.pipeline import Pipeline
    from streamrec.replay import replay
    from streamrec.sources import read_log
    from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

    log = read_log(args.quality, ActionVocabulary.for_domain("video"))
    events = log.events[:args.quality_events] if args.quality_events else log.events
    if args.quality_encoder:
        model_dir, model = Path(args.quality_encoder), str(args.quality_encoder)
    else:
        model_dir = build_tiny_gpt2(tokenizer_corpus(log.items), args.model_dir.parent / "streamrec-bench-ml-tiny-gpt2",
                                    n_layer=args.quality_layers, n_embd=args.quality_width, n_head=4, vocab_size=2000)
        model = (f"tiny GPT-2 ({args.quality_layers} layers, {args.quality_width} wide, random weights) with a "
                 "BPE tokenizer trained on the ml-100k titles")
    rows = []
    for mode in args.quality_modes:
        settings = load_settings(
            domain="video", window={"max_events": N_EVENTS}, metrics_address="",
            head={"text_features": mode != "ids-only"},
            encoder={"model": str(model_dir), "mode": "item" if mode == "ids-only" else mode,
                     "threads": args.threads, "max_length": 1024, "slack_events": args.slack,
                     "batch_size": args.batch_size})
        encoder = HFEncoder(settings.encoder)
        catalog = Catalog(log.items)
        pipeline = Pipeline(settings, encoder, catalog)
        pipeline.window_encoder = make_window_encoder(settings, encoder, pipeline.template, catalog)
        pipeline.item_vectors.matrix()  # item texts first, so the token count below is the windows'
        tokens_before = encoder.tokens_encoded
        metrics = replay(pipeline, events, progress=True)
        window_encoder = pipeline.window_encoder
        positions = (window_encoder.stats.positions if isinstance(window_encoder, IncrementalWindowEncoder)
                     else encoder.tokens_encoded - tokens_before)
        rows.append({"mode": mode, "events": len(events), "positions_per_event": positions / len(events),
                     **{k: metrics[k] for k in ("hit@10", "ndcg@10", "mrr@10", "coverage@10", "scored_events",
                                                "events_per_second", "seconds")}})
    return {"variant": "quality", "dataset": str(args.quality), "model": model, "rows": rows}


# -- the parent: run every variant in its own process, write the report -------------------------


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def _notes(rows: list[dict[str, Any]], cfg: dict[str, Any]) -> list[str]:
    """What the numbers say, worked out from them."""
    by_name = {r["variant"]: r for r in rows if "error" not in r}
    notes = []
    naive = by_name.get("naive")
    if naive and naive["mean_window_events"]:
        t = naive["positions_per_event"] / naive["mean_window_events"]
        s_max = max(int(1024 / t) - N_EVENTS, 0)
        bound = N_EVENTS / (1 + N_EVENTS / (s_max + 1)) if s_max else 1.0
        notes.append(
            f"* Text mode's floor: a view is re-encoded (about N·t tokens) once every S+1 events and each event "
            f"adds t tokens, so incremental encoding costs about t·(1 + N/(S+1)) tokens per event against N·t "
            f"for the naive path. Here t = {t:.1f} tokens per event; GPT-2's 1024 positions cap N+S at "
            f"{int(1024 / t)} events, so S ≤ {s_max} and the token ratio is at most {bound:.1f}× when every "
            f"window is full. At S = {cfg['slack']} the steady state is {t * (1 + N_EVENTS / (cfg['slack'] + 1)):.1f} "
            f"positions per event ({N_EVENTS / (1 + N_EVENTS / (cfg['slack'] + 1)):.1f}× fewer than naive); a "
            f"measurement that covers each user for fewer than S+1 events catches fewer resets than that. Item "
            f"mode has t = 1, so its slack can be hundreds.")
    combined = by_name.get("combined")
    if naive and combined:
        ratio = combined["events_per_second"] / naive["events_per_second"]
        cpu_ratio = combined["events_per_cpu_second"] / naive["events_per_cpu_second"]
        notes.append(f"* Combined vs naive: {ratio:.1f}× in events/s (wall clock), {cpu_ratio:.1f}× in events "
                     f"per CPU-second, {naive['positions_per_event'] / combined['positions_per_event']:.1f}× "
                     f"fewer encoder positions per event; target ≥ 20×.")
    compiled = next((r for r in rows if r["variant"] == "compile"), None)
    if compiled and "error" in compiled:
        notes.append(f"* torch.compile failed here: {compiled['error'][:300]}")
    elif compiled and naive:
        notes.append(f"* torch.compile (inductor, dynamic shapes, padded layout): "
                     f"{compiled['events_per_second'] / naive['events_per_second']:.2f}× the eager naive path "
                     f"after {compiled['warmup_seconds']:.0f} s of compiling and warm-up (not timed).")
    return [*notes, ""] if notes else []


def write_report(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = report["config"].get("report_name", "encoding")
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    cfg, info, rows = report["config"], report["machine"], report["variants"]
    naive = next((r for r in rows if r["variant"] == "naive"), None)
    lines = [
        "# Window encoding: naive vs incremental", "",
        f"Machine: {info['cpu']}, {info['cores']} cores"
        + (f", GPU {info['gpu']}" if info.get("gpu") else "")
        + f"; torch {version(info, 'torch')}, transformers {version(info, 'transformers')}; "
        f"device `{cfg['device']}`, dtype `{cfg['dtype']}`, {cfg['threads'] or 'all'} threads. "
        f"Load average at start {tuple(round(x, 1) for x in load_average(info) or ())}, "
        f"at end {tuple(round(x, 1) for x in report['load_average_at_end'] or ())} (a shared machine).", "",
        f"Model: GPT-2 small shape (`GPT2Config()`, random weights), BPE tokenizer with a vocabulary of 1000 "
        f"trained on the catalogue. Log: synthetic titles, {cfg['pool']} users active at a time; "
        f"N = {N_EVENTS} events per window, slack S = {cfg['slack']}, micro-batches of {cfg['micro_batch']} "
        f"events, encoder batch size {cfg['batch_size']}, KV budget {cfg['kv_cache_bytes'] / 2**30:.1f} GiB. "
        f"Stateful variants warm up on {cfg['warmup']} events first (stateless ones on a few, for kernel "
        f"warm-up); the slow stateless variants are measured on fewer events (the `events` column).", "",
        "| variant | layout | events | positions/event | events/s | × naive | p50 batch ms | p99 batch ms | "
        "peak RSS MB | " + ("peak GPU MB | " if cfg["device"] == "cuda" else "") + "max rel. diff (samples) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if cfg["device"] == "cuda" else "") + "---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['title']} | failed: {r['error'][:120]} |")
            continue
        speedup = r["events_per_second"] / naive["events_per_second"] if naive else float("nan")
        gpu = f"{_fmt(r.get('peak_gpu_mb', 0), 0)} | " if cfg["device"] == "cuda" else ""
        lines.append(
            f"| {r['title']} | {r.get('layout', '-')} | {r['events']} | {_fmt(r['positions_per_event'])} | "
            f"{_fmt(r['events_per_second'], 2)} | {_fmt(speedup)} | {_fmt(r['batch_latency_p50_ms'], 0)} | "
            f"{_fmt(r['batch_latency_p99_ms'], 0)} | {_fmt(r['peak_rss_mb'], 0)} | {gpu}"
            f"{r['max_relative_difference']:.1e} ({r['reference_samples']}) |")
    lines += ["", "Max rel. diff: largest `|v - ref| / |ref|` over sampled user vectors; `ref` is an unbatched "
              "full forward over exactly the events the vector reads, in the same chunked token ids (item "
              "rows: against item-mode full forwards, since item mode reads different inputs). The "
              "joined-string row shows how far today's tokenization of the whole string is from the chunked "
              "ids at event boundaries.", ""]
    stats = [r for r in rows if "encoder_stats" in r and r["encoder_stats"]["resets"]]
    if stats:
        lines += ["| variant | resets by reason | appended events | forwards | evictions | peak KV cache MB |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in stats:
            s = r["encoder_stats"]
            lines.append(f"| {r['variant']} | {s['resets']} | {s['appended_events']} | {s['forwards']} | "
                         f"{s['evictions']} | {_fmt(s['peak_cache_bytes'] / 2**20, 0)} |")
        lines.append("")
    for section in ("adaptive", "replay"):
        if report.get(section) and "error" in report[section]:
            lines += [f"The {section} run failed: {report[section]['error']}", ""]
    if report.get("adaptive") and "rows" in report["adaptive"]:
        a = report["adaptive"]
        lines += [f"Adaptive batching (combined encoder, open-loop arrivals in real time, capacity taken as "
                  f"{_fmt(a['capacity_events_per_second'])} events/s; fixed = micro-batches of "
                  f"{cfg['micro_batch']} or {cfg['max_wait_ms']} ms):", "",
                  "| load | arrivals/s | policy | events | mean batch | p50 latency ms | p99 latency ms | "
                  "backlog at end |", "|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in a["rows"]:
            lines.append(f"| {r['load']} | {_fmt(r['arrival_rate'])} | {r['policy']} | {r['events']} | "
                         f"{_fmt(r['mean_batch'])} | {_fmt(r['latency_p50_ms'], 0)} | "
                         f"{_fmt(r['latency_p99_ms'], 0)} | {r['backlog_at_end']} |")
        lines.append("")
    if report.get("replay") and "rows" in report["replay"]:
        lines += ["End to end (embedded replay: windows, head training, ranking, scoring):", "",
                  "| encoder.mode | events | events/s | encode s | train s | rank s | hit@10 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in report["replay"]["rows"]:
            s = r["seconds"]
            lines.append(f"| {r['mode']} | {r['events']} | {_fmt(r['events_per_second'])} | {_fmt(s['encode'])} "
                         f"| {_fmt(s['train'])} | {_fmt(s['rank'])} | {r['hit@10']:.3f} |")
        lines.append("")
    quality = report.get("quality")
    if quality and "rows" in quality:
        lines += [f"Recommendation quality, text vs item mode: prequential replay of {quality['dataset']} "
                  f"(video actions, N = {N_EVENTS}), encoder: {quality['model']}; everything else as configured "
                  "by default. `text` is today's joined-string path, `incremental` the chunked-ids path with KV "
                  "caches (the same vectors as a full re-encode of its view), `item` one position per event, "
                  "`ids-only` the head without encoder vectors (what the encoder adds at all). Replay speed is "
                  "left out: on a shared machine it measured the neighbours.", "",
                  "| encoder.mode | events | positions/event | hit@10 | ndcg@10 | mrr@10 | coverage@10 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in quality["rows"]:
            lines.append(f"| {r['mode']} | {r['events']} | {_fmt(r['positions_per_event'])} | {r['hit@10']:.4f} | "
                         f"{r['ndcg@10']:.4f} | {r['mrr@10']:.4f} | {r['coverage@10']:.3f} |")
        lines.append("")
    elif quality:
        lines += [f"Quality run failed: {quality.get('error')}", ""]
    lines += _notes(rows, cfg)
    lines += [f"Command: `{report['command']}`", *[f"Then: `{c}`" for c in report.get("commands", [])], ""]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1024, help="events measured (fast variants)")
    parser.add_argument("--naive-events", type=int, default=32, help="events measured (slow stateless variants)")
    parser.add_argument("--prefill", type=int, default=3000, help="events that fill windows before anything runs")
    parser.add_argument("--warmup", type=int, default=256, help="events stateful variants encode before the clock")
    parser.add_argument("--pool", type=int, default=32, help="users active at any time")
    parser.add_argument("--slack", type=int, default=28, help="S, the incremental view's slack in events")
    parser.add_argument("--kv-cache-bytes", type=int, default=4 << 30)
    parser.add_argument("--micro-batch", type=int, default=64, help="events per micro-batch")
    parser.add_argument("--batch-size", type=int, default=32, help="encoder.batch_size (users per forward)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--samples", type=int, default=6, help="user vectors checked against a reference per variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-adaptive", action="store_true", help="skip the adaptive-batching scenario")
    parser.add_argument("--adaptive-seconds", type=float, default=30.0, help="per load and policy")
    parser.add_argument("--max-wait-ms", type=int, default=200)
    parser.add_argument("--replay", action="store_true", help="also run the end-to-end replay, text vs incremental")
    parser.add_argument("--replay-events", type=int, default=20000)
    parser.add_argument("--quality", type=Path, help="a MovieLens directory (e.g. ../shared/datasets/ml-100k): "
                        "also replay it and compare the recommendation quality of text and item modes")
    parser.add_argument("--quality-only", action="store_true", help="the same as --only quality")
    parser.add_argument("--only", choices=["adaptive", "replay", "quality"],
                        help="rerun one section and merge it into the existing report")
    parser.add_argument("--quality-events", type=int, default=None, help="first events of the log (default: all)")
    parser.add_argument("--quality-modes", nargs="+", default=["text", "incremental", "item", "ids-only"],
                        choices=["text", "incremental", "item", "ids-only"],
                        help="ids-only: the head without encoder vectors, to see what the encoder adds")
    parser.add_argument("--quality-encoder", help="a local causal model (directory or .gguf) for --quality "
                        "instead of a tiny random GPT-2 built on the log's titles")
    parser.add_argument("--quality-layers", type=int, default=2)
    parser.add_argument("--quality-width", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "streamrec-bench-gpt2-small")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--report-name", default="encoding", help="writes <out-dir>/<name>.json and .md")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    parser.add_argument("--capacity", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _child(name: str, args: argparse.Namespace, argv: list[str], extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        command = [sys.executable, __file__, *argv, "--variant", name, "--result-file", str(result_file), *extra]
        proc = subprocess.run(command, check=False)
        if proc.returncode != 0 or not result_file.exists():
            return {"variant": name, "title": VARIANTS[name].title if name in VARIANTS else name,
                    "error": f"exit status {proc.returncode}"}
        result: dict[str, Any] = json.loads(result_file.read_text())
        return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.variant:
        runner = {"adaptive": run_adaptive, "replay": run_replay, "quality": run_quality}.get(args.variant)
        try:
            result = runner(args) if runner else run_variant(args.variant, args)
        except Exception as exc:  # recorded in the report, e.g. torch.compile failing on this machine
            result = {"variant": args.variant, "title": VARIANTS.get(args.variant, Variant(args.variant)).title,
                      "error": f"{type(exc).__name__}: {exc}"}
        args.result_file.write_text(json.dumps(result))
        return 0
    from rich.console import Console

    console = Console(stderr=True)
    only = "quality" if args.quality_only else args.only
    if only:  # rerun one section and merge it into the existing report
        if only == "quality" and args.quality is None:
            raise SystemExit("--only quality needs --quality DATASET")
        path = args.out_dir / f"{args.report_name}.json"
        if not path.exists():
            raise SystemExit(f"--only merges into {path}, which does not exist yet")
        existing: dict[str, Any] = json.loads(path.read_text())
        extra = []
        if only == "adaptive":
            combined = next(r for r in existing["variants"] if r["variant"] == "combined" and "error" not in r)
            extra = ["--capacity", str(combined["events_per_second"])]
        console.rule(f"[bold]{only}")
        existing[only] = _child(only, args, argv, extra)
        existing.setdefault("commands", []).append("python benchmarks/encoding.py " + " ".join(argv))
        console.print(f"wrote {write_report(existing, args.out_dir)}")
        return 0
    info = machine_info()
    _, items = build_log(args.prefill + args.warmup + args.events, args.pool, args.seed)
    with console.status("building the GPT-2 small model (random weights) ..."):
        build_model(args.model_dir, items)
    rows = []
    for n, name in enumerate(args.variants, 1):
        console.rule(f"[bold]{n}/{len(args.variants)} {VARIANTS[name].title}")
        rows.append(_child(name, args, argv, []))
        r = rows[-1]
        console.print(r.get("error") or f"{r['events_per_second']:.2f} events/s, "
                      f"{r['positions_per_event']:.1f} positions/event, max rel. diff "
                      f"{r['max_relative_difference']:.1e}")
    report: dict[str, Any] = {
        "machine": info, "command": "python benchmarks/encoding.py " + " ".join(argv),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                   if k not in ("variant", "result_file", "capacity")},
        "variants": rows,
    }
    combined = next((r for r in rows if r["variant"] == "combined" and "error" not in r), None)
    if not args.no_adaptive and combined:
        console.rule("[bold]adaptive batching")
        report["adaptive"] = _child("adaptive", args, argv, ["--capacity", str(combined["events_per_second"])])
    if args.replay:
        console.rule("[bold]end-to-end replay")
        report["replay"] = _child("replay", args, argv, [])
    if args.quality is not None:
        console.rule("[bold]quality: text vs item mode")
        report["quality"] = _child("quality", args, argv, [])
    report["load_average_at_end"] = current_load_average()
    path = write_report(report, args.out_dir)
    console.print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
