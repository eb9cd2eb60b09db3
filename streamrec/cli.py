"""The ``streamrec`` command line. Settings are built here, once, and passed down."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from streamrec.config import Settings, load_settings
from streamrec.errors import StreamrecError
from streamrec.logs import configure_logging
from streamrec.sources import parse_column_map

app = typer.Typer(help="streamrec: fresh recommendations from a behaviour stream, read by a language model.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file")]
EncoderOpt = Annotated[str | None, typer.Option("--encoder", help="HF model id, local dir or .gguf file")]
DomainOpt = Annotated[str | None, typer.Option("--domain", help="ecommerce | music | social | video")]
LanguageOpt = Annotated[str | None, typer.Option("--language", help="text template: en | zh")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="events per micro-batch")]


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "WARNING",
    log_json: Annotated[bool, typer.Option(help="one JSON object per log line")] = False,
) -> None:
    configure_logging(log_level, log_json)
    _quiet_transformers()


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def _settings(config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, **overrides)


def _fail(exc: StreamrecError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=2)


@app.command()
def replay(
    log: Annotated[Path, typer.Argument(help="recorded log: file, MovieLens or RecBole directory")],
    catalog: Annotated[Path | None, typer.Option("--catalog", help="items file (.csv/.jsonl)")] = None,
    log_format: Annotated[str, typer.Option(
        "--format", help="auto|csv|jsonl|msgpack|movielens|amazon|recbole")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="recommendations JSONL")] = None,
    metrics_out: Annotated[Path | None, typer.Option("--metrics-out", help="metrics JSON")] = None,
    column: Annotated[list[str] | None, typer.Option("--column", help="column map ours=theirs")] = None,
    limit: Annotated[int | None, typer.Option(help="read at most this many events")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="load/save head checkpoints here")] = None,
    config: ConfigOpt = None,
    encoder: EncoderOpt = None,
    domain: DomainOpt = None,
    language: LanguageOpt = None,
    batch_size: BatchOpt = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    metrics_address: Annotated[str | None, typer.Option(help="host:port for /metrics ('' disables)")] = None,
    linger: Annotated[float, typer.Option(help="keep serving /metrics this many seconds after the end")] = 0.0,
) -> None:
    """Replay a recorded log through the pipeline (no Kafka) and score it prequentially."""
    from streamrec.replay import replay_files

    try:
        settings = _settings(config, domain=domain, encoder={"model": encoder}, metrics_address=metrics_address,
                             text={"language": language}, batch={"max_size": batch_size})
        metrics = replay_files(settings, log, catalog, log_format, parse_column_map(column), limit,
                               out, metrics_out, state_dir, progress, domain_given=domain is not None,
                               linger_seconds=linger)
    except StreamrecError as exc:
        raise _fail(exc) from exc
    print_metrics(metrics)


@app.command()
def train(
    log: Annotated[Path, typer.Argument(help="recorded history: file, MovieLens or RecBole directory")],
    state_dir: Annotated[Path, typer.Option(help="where the trained state goes (replay and run start from it)")],
    epochs: Annotated[int, typer.Option(help="at most this many epochs (the first streams the log, "
                                             "later ones train the head again)")] = 5,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="items file (.csv/.jsonl)")] = None,
    log_format: Annotated[str, typer.Option(
        "--format", help="auto|csv|jsonl|msgpack|movielens|amazon|recbole")] = "auto",
    column: Annotated[list[str] | None, typer.Option("--column", help="column map ours=theirs")] = None,
    limit: Annotated[int | None, typer.Option(help="read at most this many events")] = None,
    validation: Annotated[bool, typer.Option(help="hold out each user's last event to pick the best epoch")] = True,
    patience: Annotated[int, typer.Option(help="stop after this many epochs without a validation gain")] = 2,
    config: ConfigOpt = None,
    encoder: EncoderOpt = None,
    domain: DomainOpt = None,
    language: LanguageOpt = None,
    batch_size: BatchOpt = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Warm start: train on a recorded log for several epochs and save the state for replay and run."""
    from streamrec.training import train_files

    try:
        settings = _settings(config, domain=domain, encoder={"model": encoder}, text={"language": language},
                             batch={"max_size": batch_size}, metrics_address="")
        report = train_files(settings, log, state_dir, epochs, catalog, log_format, parse_column_map(column), limit,
                             validation=validation, patience=patience, progress=progress,
                             domain_given=domain is not None)
    except StreamrecError as exc:
        raise _fail(exc) from exc
    table = Table("epoch", "loss", "seconds", f"hit@{report.k}", f"ndcg@{report.k}")
    for epoch in report.epochs:
        table.add_row(str(epoch.epoch) + (" (kept)" if epoch.epoch == report.best_epoch else ""),
                      f"{epoch.loss:.3f}", f"{epoch.seconds:.0f}",
                      *(f"{epoch.validation[f'{m}@{report.k}']:.4f}" if epoch.validation else "-"
                        for m in ("hit", "ndcg")))
    console.print(table)
    console.print(f"trained on {report.trained_events} events, validated on {report.validation_events} "
                  f"(each user's last); state in [bold]{state_dir}/[/] (training.json has the epochs)")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option(help="where the log, catalogue, model and results go")] = Path("demo-out"),
    users: int = 400,
    items: int = 200,
    seed: int = 0,
    language: LanguageOpt = None,
) -> None:
    """Generate a synthetic e-commerce log and catalogue, build a tiny GPT-2, replay, show results."""
    from streamrec.demo import prepare_demo
    from streamrec.replay import replay_files

    try:
        log_path, catalog_path, model_dir = prepare_demo(out_dir, users, items, seed, language or "en", console)
        settings = _settings(None, encoder={"model": str(model_dir)}, text={"language": language},
                             metrics_address="")
        metrics = replay_files(settings, log_path, catalog_path, "csv", None, None,
                               out_dir / "recommendations.jsonl", out_dir / "metrics.json", None, True)
    except StreamrecError as exc:
        raise _fail(exc) from exc
    show_examples(out_dir / "recommendations.jsonl", log_path, catalog_path, seed)
    print_metrics(metrics)
    console.print(f"files in [bold]{out_dir}/[/]: recommendations.jsonl, metrics.json, events.csv, items.csv")


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Argument(help="writes events.<ext> and items.csv here")],
    users: int = 400,
    items: int = 200,
    seed: int = 0,
    log_format: Annotated[str, typer.Option("--format", help="csv|jsonl|msgpack")] = "csv",
    language: Annotated[str, typer.Option(help="en | zh titles")] = "en",
    drift_at: Annotated[float | None, typer.Option(help="re-draw the planted structure here (0..1)")] = None,
) -> None:
    """Write a synthetic log with planted sequential structure, and its catalogue."""
    from streamrec.synthetic import generate as make_log
    from streamrec.synthetic import write_events, write_items

    log = make_log(n_users=users, n_items=items, seed=seed, language=language, drift_at=drift_at)
    try:
        events = write_events(log.events, out_dir / f"events.{log_format}")
    except StreamrecError as exc:
        raise _fail(exc) from exc
    catalog = write_items(log.items, out_dir / "items.csv")
    console.print(f"wrote {len(log.events)} events to {events} and {len(log.items)} items to {catalog}")


@app.command("tiny-model")
def tiny_model(
    catalog: Annotated[Path, typer.Option("--catalog", help="items file whose texts train the tokenizer")],
    out: Annotated[Path, typer.Option("--out", help="model directory to write")],
    layers: int = 2,
    hidden: int = 64,
) -> None:
    """Build a tiny random GPT-2 (no hub needed), for trying the pipeline and for tests."""
    from streamrec.catalog import read_items
    from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

    try:
        corpus = tokenizer_corpus(list(read_items(catalog)))
    except StreamrecError as exc:
        raise _fail(exc) from exc
    build_tiny_gpt2(corpus, out, n_layer=layers, n_embd=hidden)
    console.print(f"tiny GPT-2 saved to {out}")


def print_metrics(metrics: dict[str, Any]) -> None:
    table = Table(title="replay metrics", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("hit@10", "ndcg@10", "mrr@10", "coverage@10", "events", "scored_events", "users", "items",
                "events_per_second", "wall_seconds", "model_version", "duplicates", "too_late",
                "rejected_records"):
        if key in metrics:
            value = metrics[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


def show_examples(recs_path: Path, log_path: Path, catalog_path: Path, seed: int, n: int = 3) -> None:
    """Print a few recommendations from the second half of the replay, after what the user did."""
    from streamrec.catalog import Catalog
    from streamrec.events import ActionVocabulary
    from streamrec.recommendations import Recommendation
    from streamrec.sources import read_log
    from streamrec.text import TextTemplate

    events = read_log(log_path, ActionVocabulary.for_domain("ecommerce")).events
    catalog = Catalog.from_file(catalog_path)
    template = TextTemplate.english()
    lines = recs_path.read_text(encoding="utf-8").splitlines()
    rng = random.Random(seed)
    for line in rng.sample(lines[len(lines) // 2:], min(n, len(lines) // 2)):
        rec = Recommendation.from_dict(json.loads(line))
        before = [e for e in events if e.user_id == rec.user_id and e.timestamp <= rec.event_time][-3:]
        console.print(f"[bold]{rec.user_id}[/] recently: {template.render_window(before, catalog)}")
        console.print(f"  {rec.text} [dim](model v{rec.model_version})[/]")
        for item in rec.items[:3]:
            console.print(f"    {item.title} [dim]- {item.reason} (score {item.score:.2f})[/]")


def _register_kafka_commands() -> None:
    from streamrec.kafka import commands

    app.command("run")(commands.run)
    app.command("produce")(commands.produce)
    app.command("tail")(commands.tail)
    app.command("forget")(commands.forget)


_register_kafka_commands()
