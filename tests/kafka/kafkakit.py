"""Helpers for the kafka tests: topics, producing, reading back, offsets, service processes.

Imported by the tests as ``from kafkakit import ...`` (this directory is on ``sys.path`` under
pytest's default import mode); the fixtures that hand them out live in ``conftest.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from streamrec.config import Settings, load_settings
from streamrec.events import Event, encode_event
from streamrec.kafka.changelog import merge_snapshots
from streamrec.kafka.tail import decode_recommendation
from streamrec.recommendations import Recommendation
from streamrec.retry import retry
from streamrec.synthetic import generate
from streamrec.windows import WindowStore

REPO = Path(__file__).resolve().parents[2]
N_ITEMS = 60


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
        return decode_recommendation(self.value)  # JSON by default, msgpack with kafka.output_format

    def event(self) -> dict[str, Any]:
        assert self.value is not None
        event: dict[str, Any] = msgpack.unpackb(self.value, raw=False)
        return event


# -- a broker of one's own ------------------------------------------------------------------


class LocalBroker:
    """``scripts/kafka-up.sh`` on its own ports and state directory: started, killed, restarted."""

    def __init__(self, port: int, controller_port: int, state_dir: Path, **env: str) -> None:
        self.bootstrap = f"127.0.0.1:{port}"
        self.state_dir = state_dir
        self.env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(controller_port),
                    "KAFKA_STATE_DIR": str(state_dir), **env}  # env: more of kafka-up.sh's settings

    def _script(self, name: str) -> None:
        done = subprocess.run([str(REPO / "scripts" / name)], env=self.env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"

    def start(self) -> None:
        self._script("kafka-up.sh")

    def stop(self) -> None:
        self._script("kafka-down.sh")

    def signal(self, number: int) -> None:
        """SIGSTOP / SIGCONT: the broker hangs (a long GC pause, a frozen VM) and comes back."""
        os.kill(int((self.state_dir / "kafka.pid").read_text()), number)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes mid-conversation, as a crashed host would."""
        pid = int((self.state_dir / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the killed broker did not go away"
            time.sleep(0.1)


# -- the service as a subprocess -------------------------------------------------------------


class ServiceProcess:
    """``streamrec run --config ...`` in a subprocess, its log in a file."""

    def __init__(self, config: Path, log_path: Path, extra_args: Sequence[str] = (),
                 log_level: str | None = "INFO") -> None:
        self.log_path = log_path
        script = Path(sys.executable).with_name("streamrec")
        command = [str(script)] if script.exists() else [sys.executable, "-c", "from streamrec.cli import app; app()"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self._log = log_path.open("ab")
        level = ["--log-level", log_level] if log_level else []  # None: the default level
        self.proc = subprocess.Popen([*command, *level, "run", "--config", str(config), *extra_args],
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

    def create_topic(self, prefix: str, partitions: int, config: dict[str, str] | None = None,
                     exact: bool = False) -> str:
        """``prefix-<run id>`` (``exact``: ``prefix`` itself), with its leaders elected."""
        name = prefix if exact else self.name(prefix)
        self.admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result()
        self.wait_for(lambda: self._has_leaders(name, partitions), f"leaders for {name}", 30)
        return name

    def _has_leaders(self, topic: str, partitions: int) -> bool:
        found = self.admin.list_topics(topic, timeout=10).topics.get(topic)
        return (found is not None and found.error is None and len(found.partitions) == partitions
                and all(p.leader >= 0 for p in found.partitions.values()))

    @staticmethod
    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    # -- producing --------------------------------------------------------------------------

    def produce(self, topic: str, records: Sequence[tuple[bytes | None, bytes | None]],
                headers: Sequence[list[tuple[str, str | bytes | None]] | None] | None = None,
                ) -> list[tuple[int, int]]:
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
                    error = m.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            done.add(int(m.partition() or 0))
                        continue
                    headers = m.headers() or []
                    pairs = headers.items() if isinstance(headers, dict) else headers
                    records.append(Record(str(m.topic()), int(m.partition() or 0), int(m.offset() or 0), m.key(),
                                          m.value(), {k: v if isinstance(v, bytes) else b"" for k, v in pairs},
                                          m.timestamp()[1]))
            return sorted(records, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close()

    def recommendations(self, topic: str) -> list[tuple[Record, Recommendation]]:
        return [(r, r.recommendation()) for r in self.read_all(topic)]

    def changelog_windows(self, topic: str, settings: Settings) -> WindowStore:
        """The windows the changelog would restore: the latest record per user in each partition."""
        latest: dict[tuple[int, str], bytes | None] = {}
        for record in self.read_all(topic):
            assert record.key is not None
            latest[record.partition, record.key.decode()] = record.value
        store = reference_windows(settings, [])
        store.restore(merge_snapshots(v for v in latest.values() if v is not None))
        return store

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "offsets"})

        def read() -> dict[int, int]:
            partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in partitions}

        try:
            return _retrying(read)
        finally:
            consumer.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        # read_uncommitted: ask for the last committed offsets without waiting for a pending
        # transactional commit (a killed exactly-once service leaves one open until its restart).
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group,
                             "isolation.level": "read_uncommitted"})

        def read() -> dict[int, int]:
            partitions = consumer.list_topics(topic, timeout=20).topics[topic].partitions
            found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
            return {tp.partition: tp.offset for tp in found}

        try:
            return _retrying(read)
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

    def start(self, config: Path, *args: str, name: str = "service", log_level: str | None = "INFO") -> ServiceProcess:
        log_path = self.tmp_path / f"{name}-{len(self.services)}.log"
        service = ServiceProcess(config, log_path, args, log_level)
        self.services.append(service)
        return service

    def cleanup(self) -> None:
        for service in self.services:
            if service.alive():
                service.kill()


def probe(port: int, path: str) -> tuple[int, str]:
    """``GET path`` on the service's endpoints: (status, body); (0, reason) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on the service's /metrics, by (name, sorted labels)."""
    status, text = probe(port, "/metrics")
    assert status == 200, text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _retrying(read: Callable[[], dict[int, int]]) -> dict[int, int]:
    """``read()``, retried on Kafka errors for about 10 s: a just-created topic may not have
    leaders everywhere yet, and a fresh broker's group coordinator may still be loading."""
    return retry(read, retriable=lambda exc: isinstance(exc, KafkaException), timeout_s=10, first_s=0.1, max_s=1.0)
