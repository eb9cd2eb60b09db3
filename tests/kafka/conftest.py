"""A real Kafka broker for the ``kafka`` tests, a tiny GPT-2, and helpers to drive the service.

Which broker (session-scoped, first that applies):

1. ``STREAMREC_TEST_BOOTSTRAP=host:port`` if set;
2. a testcontainers ``apache/kafka`` container if a Docker engine answers;
3. 127.0.0.1:9092 from ``scripts/kafka-up.sh``: if nothing answers there, the fixture runs the
   script itself (it is idempotent) and waits. If that fails too, the tests FAIL (never skip):
   CI must run them.

Every test uses fresh topic and group names, since the local broker keeps its data.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamrec.catalog import Item
from streamrec.config import Settings, load_settings
from streamrec.events import Event, encode_event
from streamrec.kafka.changelog import merge_snapshots
from streamrec.recommendations import Recommendation
from streamrec.synthetic import generate
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus
from streamrec.windows import WindowStore

REPO = Path(__file__).resolve().parents[2]
N_ITEMS = 60
KAFKA_IMAGE = "apache/kafka:4.1.0"


# -- the broker ------------------------------------------------------------------------------


def _answers(bootstrap: str, timeout: float = 5.0) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000}).list_topics(timeout=timeout)
        return True
    except KafkaException:
        return False


def _docker_works() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    given = os.environ.get("STREAMREC_TEST_BOOTSTRAP")
    if given:
        if not _answers(given, 20):
            pytest.fail(f"STREAMREC_TEST_BOOTSTRAP={given} does not answer")
        yield given
        return
    if _docker_works():
        yield from _container_broker()
        return
    local = "127.0.0.1:9092"
    if not _answers(local):
        started = subprocess.run([str(REPO / "scripts" / "kafka-up.sh")], capture_output=True, text=True,
                                 timeout=900)
        deadline = time.monotonic() + 120  # kafka-up.sh can report failure while the broker still comes up
        while not _answers(local) and time.monotonic() < deadline:
            time.sleep(1)
        if not _answers(local):
            pytest.fail(f"no Kafka broker: no docker engine, and {local} does not answer after "
                        f"scripts/kafka-up.sh (exit {started.returncode}):\n{started.stdout}\n{started.stderr}\n"
                        "Start one with scripts/kafka-up.sh or set STREAMREC_TEST_BOOTSTRAP=host:port.")
    yield local


def _container_broker() -> Iterator[str]:
    """apache/kafka in KRaft mode with its client port published on a fixed free host port (the
    image advertises what it is told, so the port must be known before it starts)."""
    import socket

    from testcontainers.core.container import DockerContainer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "KAFKA_NODE_ID": "1", "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER", "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }
    container = DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, port)
    for key, value in env.items():
        container = container.with_env(key, value)
    with container:
        bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not _answers(bootstrap):
            if time.monotonic() > deadline:
                pytest.fail(f"the {KAFKA_IMAGE} container did not answer on {bootstrap}")
            time.sleep(1)
        yield bootstrap


# -- the model and the data ------------------------------------------------------------------


@pytest.fixture(scope="session")
def catalog_items() -> list[Item]:
    return generate(n_users=1, n_items=N_ITEMS, seed=0).items


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, catalog_items: list[Item]) -> Path:
    return build_tiny_gpt2(tokenizer_corpus(catalog_items), tmp_path_factory.mktemp("tiny-gpt2"),
                           n_layer=1, n_embd=32, n_head=2)


def make_log(n_users: int, events_per_user: tuple[int, int] = (10, 30), seed: int = 0) -> list[Event]:
    """A synthetic log over the session catalogue (same items for every seed: ``n_items`` fixed)."""
    return generate(n_users=n_users, n_items=N_ITEMS, events_per_user=events_per_user, seed=seed).events


def reference_windows(settings: Settings, events: Sequence[Event]) -> WindowStore:
    """Windows exactly as a crash-free pipeline with ``settings`` would hold them."""
    w = settings.window
    store = WindowStore(max_events=w.max_events, horizon_ms=int(w.horizon_seconds * 1000), max_users=w.max_users,
                        max_lateness_ms=int(w.max_lateness_seconds * 1000), max_seen_items=w.max_seen_items,
                        remember_actions=settings.retrieval.exclude_actions)
    for event in events:
        store.add(event)
    return store


def assert_same_windows(actual: WindowStore, expected: WindowStore) -> None:
    assert sorted(actual.users()) == sorted(expected.users())
    for user in expected.users():
        assert actual.window(user) == expected.window(user), user
        assert list(actual.seen_items(user)) == list(expected.seen_items(user)), user


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp: int

    def recommendation(self) -> Recommendation:
        assert self.value is not None
        return Recommendation.from_msgpack(self.value)

    def event(self) -> dict[str, Any]:
        assert self.value is not None
        return msgpack.unpackb(self.value, raw=False)  # type: ignore[no-any-return]


# -- the service as a subprocess -------------------------------------------------------------


class ServiceProcess:
    """``streamrec run --config ...`` in a subprocess, its log in a file."""

    def __init__(self, config: Path, log_path: Path, extra_args: Sequence[str] = ()) -> None:
        self.log_path = log_path
        script = Path(sys.executable).with_name("streamrec")
        command = [str(script)] if script.exists() else [sys.executable, "-c", "from streamrec.cli import app; app()"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen([*command, "--log-level", "INFO", "run", "--config", str(config), *extra_args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"service did not stop within {timeout}s after SIGTERM:\n{self.log()[-3000:]}")
        finally:
            self._log.close()

    def kill(self) -> None:
        """SIGKILL, like the OOM killer."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()


class KafkaKit:
    """Topics, producing, reading back, offsets and service processes for one test."""

    def __init__(self, bootstrap: str, model: Path, tmp_path: Path) -> None:
        self.bootstrap = bootstrap
        self.model = model
        self.tmp_path = tmp_path
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.run_id = uuid.uuid4().hex[:8]
        self.services: list[ServiceProcess] = []

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.run_id}"

    def create_topic(self, prefix: str, partitions: int, config: dict[str, str] | None = None) -> str:
        name = self.name(prefix)
        self.admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result()
        return name

    # -- producing --------------------------------------------------------------------------

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes | None]],
                headers: Sequence[list[tuple[str, bytes]] | None] | None = None) -> list[tuple[int, int]]:
        """Records as (key, value), in order; returns each one's (partition, offset)."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "partitioner": "murmur2_random",
                             "enable.idempotence": True, "linger.ms": 5})
        where: list[tuple[int, int]] = [(-1, -1)] * len(records)

        def report(index: int) -> Callable[[KafkaError | None, Any], None]:
            def on_delivery(error: KafkaError | None, message: Any) -> None:
                assert error is None, error
                where[index] = (message.partition(), message.offset())
            return on_delivery

        for index, (key, value) in enumerate(records):
            while True:
                try:
                    producer.produce(topic, value, key=key, on_delivery=report(index),
                                     headers=headers[index] if headers else None)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        assert producer.flush(60) == 0
        return where

    def produce_events(self, topic: str, events: Sequence[Event]) -> list[tuple[int, int]]:
        return self.produce(topic, [(e.user_id.encode(), encode_event(e)) for e in events])

    # -- reading ----------------------------------------------------------------------------

    def read_all(self, topic: str, isolation: str = "read_committed", timeout: float = 60) -> list[Record]:
        """Every record of ``topic`` now, in partition then offset order."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "enable.partition.eof": True,
                             "isolation.level": isolation, "fetch.wait.max.ms": 50})
        try:
            partitions = sorted(consumer.list_topics(topic, timeout=20).topics[topic].partitions)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            records: list[Record] = []
            done: set[int] = set()
            deadline = time.monotonic() + timeout
            while len(done) < len(partitions):
                assert time.monotonic() < deadline, f"reading {topic} timed out"
                for m in consumer.consume(1000, 0.5):
                    if m.error() is not None:
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            done.add(m.partition())
                        continue
                    records.append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                                          {k: v for k, v in (m.headers() or [])}, m.timestamp()[1]))
            return sorted(records, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    def recommendations(self, topic: str) -> list[tuple[Record, Recommendation]]:
        return [(r, r.recommendation()) for r in self.read_all(topic)]

    def changelog_windows(self, topic: str, settings: Settings) -> WindowStore:
        """The windows the changelog would restore: the latest record per user."""
        latest: dict[str, bytes | None] = {}
        for record in self.read_all(topic):
            assert record.key is not None
            latest[record.key.decode()] = record.value
        store = reference_windows(settings, [])
        store.restore(merge_snapshots(v for v in latest.values() if v is not None))
        return store

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "offsets"})
        try:
            partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in partitions}
        finally:
            consumer.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
            found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
            return {tp.partition: tp.offset for tp in found}
        finally:
            consumer.close()

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 120,
                 services: Sequence[ServiceProcess] = ()) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for service in services:
                if not service.alive():
                    pytest.fail(f"service exited ({service.proc.returncode}) while waiting for {what}:\n"
                                f"{service.log()[-4000:]}")
            if time.monotonic() > deadline:
                logs = "\n".join(s.log()[-3000:] for s in services)
                pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs}")
            time.sleep(0.2)

    def wait_caught_up(self, group: str, topic: str, services: Sequence[ServiceProcess] = (),
                       timeout: float = 120) -> None:
        ends = self.end_offsets(topic)
        self.wait_for(lambda: self.committed(group, topic) == ends, f"{group} to commit {ends}", timeout, services)

    # -- the service ------------------------------------------------------------------------

    def settings(self, **kafka: Any) -> dict[str, Any]:
        """Small, fast settings for the tiny model (a dict, written as the YAML config)."""
        consumer = {"consumer.session.timeout.ms": "6000", "consumer.heartbeat.interval.ms": "500"}
        config = {**consumer, **kafka.pop("config", {})}
        return {
            "encoder": {"model": str(self.model), "threads": 1},
            "batch": {"max_size": 64, "max_wait_ms": 100},
            "window": {"max_events": 10},
            "head": {"negatives": 64, "replay_sample": 32, "steps_per_batch": 1, "dim": 16},
            "retrieval": {"k": 5},
            "state_dir": str(self.tmp_path / f"state-{uuid.uuid4().hex[:6]}"),
            "kafka": {"bootstrap_servers": self.bootstrap, "checkpoint_interval_seconds": 5,
                      "shutdown_timeout_seconds": 30, **kafka, "config": config},
        }

    def write_config(self, values: dict[str, Any]) -> tuple[Path, Settings]:
        path = self.tmp_path / f"config-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path, load_settings(path)

    def start(self, config: Path, *args: str, name: str = "service") -> ServiceProcess:
        log_path = self.tmp_path / f"{name}-{len(self.services)}.log"
        service = ServiceProcess(config, log_path, args)
        self.services.append(service)
        return service

    def cleanup(self) -> None:
        for service in self.services:
            if service.alive():
                service.kill()


@pytest.fixture
def kit(kafka_bootstrap: str, tiny_model: Path, tmp_path: Path) -> Iterator[KafkaKit]:
    helper = KafkaKit(kafka_bootstrap, tiny_model, tmp_path)
    yield helper
    helper.cleanup()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(int(os.environ.get("STREAMREC_TEST_SEED", "1")))


@pytest.fixture(autouse=True)
def _timing(request: pytest.FixtureRequest) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"\n[timing] {request.node.name}: {time.perf_counter() - started:.1f}s")
