"""The ``run``, ``produce``, ``tail`` and ``forget`` commands (registered by :mod:`streamrec.cli`).

Flags override ``STREAMREC_*`` environment variables, which override the ``--config`` YAML
file; unset flags are passed as None and do not override anything.

Exit codes of ``run``: 0 after a graceful stop, 1 when Kafka failed (e.g. a record was not
delivered: nothing of that batch was committed), 2 for unusable settings or state (a checkpoint
of another encoder or catalogue, a corrupt one, a changelog record of an unknown version), 3 when a stop took
longer than ``kafka.shutdown_timeout_seconds``, 4 when the broker stayed unreachable past
``kafka.broker_timeout_seconds``, 5 when the broker refused the login or an ACL is missing
(:mod:`streamrec.kafka.security`), 128+N after a second signal N.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console

from streamrec.config import Settings, load_settings
from streamrec.errors import CheckpointError, ConfigError, KafkaAuthError, StreamrecError
from streamrec.events import WireFormat
from streamrec.sources import parse_column_map

if TYPE_CHECKING:
    from streamrec.kafka.service import KafkaService
    from streamrec.kafka.trainer import Trainer
    from streamrec.pipeline import Pipeline

log = logging.getLogger(__name__)
console = Console(stderr=True)

EXIT_KAFKA, EXIT_CONFIG, EXIT_SHUTDOWN_TIMEOUT, EXIT_BROKER, EXIT_AUTH = 1, 2, 3, 4, 5

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file")]
BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap-servers", help="HOST:PORT[,HOST:PORT]")]


def _kafka_overrides(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _settings(config: Path | None, kafka: dict[str, Any], **overrides: Any) -> Settings:
    try:
        return load_settings(config, kafka=kafka, **overrides)
    except StreamrecError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG) from exc


def build_pipeline(settings: Settings, catalog_path: Path | None) -> Pipeline:
    from streamrec.catalog import Catalog
    from streamrec.encoding import HFEncoder
    from streamrec.pipeline import Pipeline

    catalog = Catalog.from_file(catalog_path) if catalog_path is not None else Catalog()
    return Pipeline(settings, HFEncoder(settings.encoder), catalog)


@contextmanager
def stop_on_signals(service: KafkaService | Trainer, timeout_s: float) -> Iterator[None]:
    """SIGTERM/SIGINT ask ``service`` to stop; if that takes over ``timeout_s``, exit 3; a second
    signal exits at once."""
    received: list[int] = []

    def overdue() -> None:
        log.error("graceful stop took longer than %.0fs; exiting", timeout_s)
        os._exit(EXIT_SHUTDOWN_TIMEOUT)

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)
        log.info("%s: finishing the in-flight batch and stopping", signal.Signals(signum).name)
        watchdog = threading.Timer(timeout_s, overdue)
        watchdog.daemon = True
        watchdog.start()
        service.stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(
    bootstrap_servers: BootstrapOpt = None,
    input_topic: Annotated[str | None, typer.Option("--input-topic", help="events to consume")] = None,
    output_topic: Annotated[str | None, typer.Option("--output-topic", help="recommendations go here")] = None,
    group: Annotated[str | None, typer.Option("--group", help="consumer group id")] = None,
    dead_letter_topic: Annotated[str | None, typer.Option("--dead-letter-topic", help="bad events go here")] = None,
    items_topic: Annotated[str | None, typer.Option("--items-topic", help="compacted topic of item text")] = None,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="items file (.csv/.jsonl)")] = None,
    exactly_once: Annotated[bool | None, typer.Option("--exactly-once/--at-least-once",
                                                      help="transactions (default: at-least-once)")] = None,
    transactional_id: Annotated[str | None, typer.Option("--transactional-id",
                                                         help="exactly-once: stable per instance")] = None,
    instance_id: Annotated[str | None, typer.Option(
        "--instance-id", help="static group membership: a stable id per instance ('{hostname}' expands)")] = None,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="head checkpoints")] = None,
    encoder: Annotated[str | None, typer.Option("--encoder", help="HF model id, local dir or .gguf")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="ecommerce | music | social | video")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="events per micro-batch")] = None,
    role: Annotated[str | None, typer.Option(
        "--role", help="single (default) | trainer | scorer: scaled out, one trainer learns from every event "
                       "and scorers serve with the model it publishes")] = None,
    max_runtime: Annotated[float | None, typer.Option("--max-runtime", help="stop after this many seconds")] = None,
    shutdown_timeout: Annotated[float | None, typer.Option("--shutdown-timeout",
                                                           help="seconds a graceful stop may take")] = None,
    metrics_address: Annotated[str | None, typer.Option(help="host:port for /metrics ('' disables)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Consume events from Kafka and publish fresh recommendations (see streamrec.kafka.service)."""
    from confluent_kafka import KafkaException

    from streamrec.endpoints import Endpoints
    from streamrec.kafka.clients import BrokerUnavailableError
    from streamrec.kafka.service import KafkaService
    from streamrec.kafka.stats import progress_log
    from streamrec.kafka.trainer import Trainer

    kafka = _kafka_overrides(bootstrap_servers=bootstrap_servers, input_topic=input_topic,
                             output_topic=output_topic, group=group, dead_letter_topic=dead_letter_topic,
                             items_topic=items_topic, exactly_once=exactly_once, transactional_id=transactional_id,
                             instance_id=instance_id, shutdown_timeout_seconds=shutdown_timeout, role=role)
    settings = _settings(config, kafka, domain=domain, encoder={"model": encoder},
                         batch={"max_size": batch_size}, state_dir=state_dir, metrics_address=metrics_address)
    try:
        pipeline = build_pipeline(settings, catalog)
    except StreamrecError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG) from exc
    service: KafkaService | Trainer = (Trainer(settings, pipeline) if settings.kafka.role == "trainer"
                                       else KafkaService(settings, pipeline))
    if settings.kafka.progress_interval_seconds:  # the progress line shows at the default log level too
        progress_log.setLevel(min(progress_log.getEffectiveLevel(), logging.INFO))
    endpoints = None
    code = 0
    with stop_on_signals(service, settings.kafka.shutdown_timeout_seconds):
        try:
            if settings.metrics_address:
                endpoints = (Endpoints(settings.metrics_address, service.telemetry.metrics, ready=service.readiness)
                             if isinstance(service, Trainer) else
                             Endpoints(settings.metrics_address, service.telemetry.metrics,
                                       ready=service.health.readiness, alive=service.health.alive)).start()
            service.run(max_runtime)
        except KafkaAuthError as exc:  # a password or an ACL to fix: restarting would not help
            console.print(f"[bold red]error:[/] {exc}")
            code = EXIT_AUTH
        except (ConfigError, CheckpointError) as exc:  # restarting would not help
            console.print(f"[bold red]error:[/] {exc}")
            code = EXIT_CONFIG
        except BrokerUnavailableError as exc:  # restarting later may
            console.print(f"[bold red]error:[/] {exc}")
            code = EXIT_BROKER
        except (StreamrecError, KafkaException) as exc:
            console.print(f"[bold red]error:[/] {exc}")
            code = EXIT_KAFKA
        finally:
            if endpoints is not None:
                endpoints.stop()
    print(json.dumps({"stats": service.stats.as_dict()}), file=sys.stderr, flush=True)
    if code:
        raise typer.Exit(code)


def produce(
    log_path: Annotated[Path, typer.Argument(metavar="LOG", help="recorded log: file or MovieLens directory")],
    topic: Annotated[str | None, typer.Option("--topic", help="default: kafka.input_topic")] = None,
    rate: Annotated[float | None, typer.Option("--rate", help="events per second (default: unlimited)")] = None,
    log_format: Annotated[str, typer.Option("--format", help="auto|csv|jsonl|msgpack|movielens|amazon")] = "auto",
    wire_format: Annotated[str, typer.Option("--wire-format", help="events as msgpack | json")] = "msgpack",
    catalog: Annotated[Path | None, typer.Option("--catalog", help="items file to publish")] = None,
    items_topic: Annotated[str | None, typer.Option("--items-topic", help="publish items here first")] = None,
    partitions: Annotated[int | None, typer.Option(
        "--partitions", help="a missing topic is created with this many (default: kafka.topic_partitions, 6)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="at most this many events")] = None,
    column: Annotated[list[str] | None, typer.Option("--column", help="column map ours=theirs")] = None,
    bootstrap_servers: BootstrapOpt = None,
    domain: Annotated[str | None, typer.Option("--domain", help="ecommerce | music | social | video")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    config: ConfigOpt = None,
) -> None:
    """Replay a recorded log into a topic, keyed by user_id, in timestamp order."""
    from streamrec.kafka.produce import produce_log

    if wire_format not in ("msgpack", "json"):
        console.print(f"[bold red]error:[/] --wire-format {wire_format!r}: use msgpack or json")
        raise typer.Exit(EXIT_CONFIG)
    settings = _settings(config, _kafka_overrides(bootstrap_servers=bootstrap_servers, items_topic=items_topic),
                         domain=domain)
    target = topic or settings.kafka.input_topic
    try:
        report = produce_log(settings, log_path, target, log_format=log_format, column_map=parse_column_map(column),
                             limit=limit, catalog_path=catalog,
                             items_topic=settings.kafka.items_topic, rate=rate, partitions=partitions,
                             wire_format=cast(WireFormat, wire_format), progress=progress)
    except StreamrecError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG) from exc
    console.print(f"sent {report.events} events to {target} and {report.items} items in {report.seconds:.1f}s "
                  f"({report.rejected} log records rejected, {report.failed} not delivered)")
    if report.failed:
        console.print(f"[bold red]error:[/] first delivery error: {report.first_error}")
        raise typer.Exit(EXIT_KAFKA)


def tail(
    topic: Annotated[str | None, typer.Option("--topic", help="default: kafka.output_topic")] = None,
    max_count: Annotated[int | None, typer.Option("--max", help="stop after this many")] = None,
    from_beginning: Annotated[bool, typer.Option(
        "--from-beginning", help="start at the oldest recommendation (default: only new ones)")] = False,
    idle_timeout: Annotated[float | None, typer.Option("--idle-timeout", help="stop after N s without any")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of text")] = False,
    bootstrap_servers: BootstrapOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print recommendations as they are published (read_committed)."""
    from streamrec.kafka.tail import tail as print_recommendations

    settings = _settings(config, _kafka_overrides(bootstrap_servers=bootstrap_servers))
    if not from_beginning:
        console.print(f"[dim]waiting for new recommendations on {topic or settings.kafka.output_topic} "
                      "(--from-beginning shows the ones already there)[/]")
    try:
        print_recommendations(settings, topic or settings.kafka.output_topic, max_count, from_beginning,
                              idle_timeout, as_json, Console())
    except StreamrecError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_KAFKA) from exc
    except KeyboardInterrupt:
        pass


def forget(
    user_ids: Annotated[list[str], typer.Argument(help="the users to forget")],
    state_dir: Annotated[Path | None, typer.Option(
        "--state-dir", help="forget them in this local state (replay/train) instead of through Kafka")] = None,
    topic: Annotated[str | None, typer.Option("--topic", help="default: kafka.input_topic")] = None,
    bootstrap_servers: BootstrapOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Forget users: their windows, caches and recommendations (the model's weights stay; see the README).

    Through Kafka, a forget request goes to every partition of the input topic; the service applies
    it in order with the user's events and writes tombstones to the changelog and output topics."""
    from streamrec.forget import forget_in_state_dir

    try:
        if state_dir is not None:
            removed = forget_in_state_dir(state_dir, user_ids)
            console.print(f"forgot {len(removed)} of {len(user_ids)} users in {state_dir} "
                          f"({len(user_ids) - len(removed)} had no window there)")
            return
        from streamrec.kafka.produce import request_forget

        settings = _settings(config, _kafka_overrides(bootstrap_servers=bootstrap_servers))
        partitions = request_forget(settings, user_ids, topic)
    except StreamrecError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG if state_dir is not None else EXIT_KAFKA) from exc
    console.print(f"sent forget requests for {len(user_ids)} users to {partitions} partitions of "
                  f"{topic or settings.kafka.input_topic}")
