"""A real Kafka broker for the ``kafka`` tests, a tiny GPT-2, and helpers to drive the service.

Which broker (session-scoped, first that applies):

1. ``STREAMREC_TEST_BOOTSTRAP=host:port`` if set;
2. a testcontainers ``apache/kafka`` container if a Docker engine answers;
3. 127.0.0.1:9092 from ``scripts/kafka-up.sh``: if nothing answers there, the fixture runs the
   script itself (it is idempotent) and waits. If that fails too, the tests FAIL (never skip):
   CI must run them.

Every test uses fresh topic and group names, since the local broker keeps its data. The helpers
(:class:`kafkakit.KafkaKit`) live in ``kafkakit.py``.

Tests that take a broker down get one of their own (``own_broker``: ``scripts/kafka-up.sh`` on a
free port with its own state, Java 17 and Maven needed), so the shared broker never goes away.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from kafkakit import N_ITEMS, REPO, KafkaKit, LocalBroker

from streamrec.catalog import Item
from streamrec.synthetic import generate
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

KAFKA_IMAGE = "apache/kafka:4.1.0"


# -- the broker ------------------------------------------------------------------------------


def _answers(bootstrap: str, timeout: float = 5.0) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000}).list_topics(timeout=timeout)
        return True
    except KafkaException:
        return False


def _docker_works() -> bool:
    try:  # testcontainers' client: the repo's docker/ directory shadows the SDK's name
        from testcontainers.core.docker_client import DockerClient

        return bool(DockerClient().client.ping())
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


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker for this test alone, which it may kill and restart."""
    broker = LocalBroker(KafkaKit.free_port(), KafkaKit.free_port(), tmp_path_factory.mktemp("broker"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# -- the model and the data ------------------------------------------------------------------


@pytest.fixture(scope="session")
def catalog_items() -> list[Item]:
    return generate(n_users=1, n_items=N_ITEMS, seed=0).items


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, catalog_items: list[Item]) -> Path:
    return build_tiny_gpt2(tokenizer_corpus(catalog_items), tmp_path_factory.mktemp("tiny-gpt2"),
                           n_layer=1, n_embd=32, n_head=2)


@pytest.fixture
def kit(kafka_bootstrap: str, tiny_model: Path, tmp_path: Path) -> Iterator[KafkaKit]:
    helper = KafkaKit(kafka_bootstrap, tiny_model, tmp_path)
    yield helper
    helper.cleanup()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(int(os.environ.get("STREAMREC_TEST_SEED", "1")))


_DURATIONS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/kafka/" in report.nodeid.replace("\\", "/"):
        _DURATIONS[report.nodeid] = _DURATIONS.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    slow = sorted(((d, n) for n, d in _DURATIONS.items() if d >= 1.0), reverse=True)
    if not _DURATIONS:
        return
    terminalreporter.section("kafka test timings")
    for duration, nodeid in slow:
        terminalreporter.write_line(f"{duration:7.1f}s  {nodeid.split('tests/kafka/')[-1]}")
    terminalreporter.write_line(f"{sum(_DURATIONS.values()):7.1f}s  total ({len(_DURATIONS)} tests, "
                                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
