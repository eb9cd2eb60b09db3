"""Model snapshots through Kafka: the trainer writes them, scorers and a restarted trainer read them.

When streamrec is scaled out (``kafka.role``), one trainer learns from every event and the
scorers serve with the model it publishes; nothing is shared but Kafka. The model topic has one
partition and ``cleanup.policy=compact``. A snapshot is the pipeline's checkpoint files
(:mod:`streamrec.state`: item vectors, the head with its Adam moments and replay buffer, the
co-occurrence index, the ranker, the text graph, and for the trainer's own restart its windows),
each cut into records of at most ``kafka.model_chunk_bytes`` keyed ``<snapshot>/<file>/<n>``,
then one record keyed ``manifest``: the model version, where it came from, the input offsets it
has learned up to, and each file's size and SHA-256. A reader takes a snapshot when its manifest
arrives with every chunk before it; a torn or corrupt one is skipped with a warning, never
loaded. Once a manifest is delivered, the chunks of every older snapshot get tombstones, so
compaction keeps about one snapshot on the broker.

>>> Snapshot.from_json(Snapshot("000000000007-ab", 7, "trainer-1", 0, {0: 12}, None, None, {}).to_json()).offsets
{0: 12}
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from streamrec.config import Settings
from streamrec.kafka.clients import KafkaServiceError, admin_config, consumer_config
from streamrec.kafka.topics import TopicSpec, ensure_topic

if TYPE_CHECKING:
    from streamrec.pipeline import Pipeline

log = logging.getLogger(__name__)

MANIFEST = b"manifest"
FORMAT = "streamrec-model-1"
DELIVERY_TIMEOUT_S = 60.0


def model_topic(settings: Settings) -> str:
    return settings.kafka.model_topic or f"{settings.kafka.group}-model"


def ensure_model_topic(settings: Settings) -> str:
    from confluent_kafka.admin import AdminClient

    topic = model_topic(settings)
    ensure_topic(AdminClient(admin_config(settings)), TopicSpec(topic, 1, {"cleanup.policy": "compact"}),
                 settings.kafka.topic_replication_factor)
    return topic


@dataclass(frozen=True)
class Snapshot:
    id: str
    version: int  # the head's: monotonic along the trainer's history
    source: str  # the trainer that made it
    created_ms: int
    offsets: dict[int, int]  # input partition -> the next offset: every event before it is learned
    events_from_ms: int | None  # Kafka timestamps of the oldest and the newest event learned since the
    events_to_ms: int | None  # previous snapshot (None: nothing new)
    files: dict[str, dict[str, Any]]  # name -> {"chunks": n, "bytes": n, "sha256": hex}
    format: str = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Snapshot:
        fields = json.loads(data)
        if fields.get("format") != FORMAT:
            raise ValueError(f"model snapshot format {fields.get('format')!r}, expected {FORMAT!r}")
        fields["offsets"] = {int(p): int(o) for p, o in fields["offsets"].items()}
        return cls(**fields)

    def keys(self) -> list[bytes]:
        return [f"{self.id}/{name}/{n}".encode() for name, meta in self.files.items() for n in range(meta["chunks"])]


class ModelWriter:
    """Publishes snapshots of a pipeline to the model topic (the trainer's)."""

    def __init__(self, settings: Settings, producer: Producer, source: str, stale: Iterable[bytes] = ()) -> None:
        self.topic = model_topic(settings)
        self.producer = producer
        self.source = source
        self.chunk_bytes = settings.kafka.model_chunk_bytes
        self.stale = set(stale)  # chunk keys of older or torn snapshots: tombstoned after the next manifest
        self.published = 0
        self.bytes_published = 0
        self._errors: list[str] = []

    def publish(self, pipeline: Pipeline, offsets: dict[int, int], events_ms: tuple[int, int] | None,
                with_windows: bool = True) -> Snapshot:
        """Write one snapshot and wait until the broker has every record of it (raises if not)."""
        with tempfile.TemporaryDirectory(prefix="streamrec-snapshot-") as tmp:
            pipeline.save(tmp, with_windows=with_windows)
            files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
        snapshot_id = f"{pipeline.head.version:012d}-{uuid.uuid4().hex[:8]}"
        meta: dict[str, dict[str, Any]] = {}
        for name, data in files.items():
            chunks = [data[i:i + self.chunk_bytes] for i in range(0, len(data), self.chunk_bytes)] or [b""]
            for n, chunk in enumerate(chunks):
                self._produce(f"{snapshot_id}/{name}/{n}".encode(), chunk)
            meta[name] = {"chunks": len(chunks), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        low, high = events_ms if events_ms is not None else (None, None)
        snapshot = Snapshot(snapshot_id, pipeline.head.version, self.source, int(time.time() * 1000),
                            dict(offsets), low, high, meta)
        self._produce(MANIFEST, snapshot.to_json())
        self._confirm()
        for key in self.stale:  # compaction may now drop every older snapshot
            self._produce(key, None)
        self.stale = set(snapshot.keys())
        self.published += 1
        return snapshot

    def _produce(self, key: bytes, value: bytes | None) -> None:
        def delivered(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                self._errors.append(str(error))

        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let it drain
                self.producer.poll(0.1)
        self.bytes_published += len(key) + len(value or b"")
        self.producer.poll(0)

    def _confirm(self) -> None:
        left = self.producer.flush(DELIVERY_TIMEOUT_S)
        if left or self._errors:
            errors, self._errors = self._errors, []
            raise KafkaServiceError(f"a model snapshot was not delivered to {self.topic} ({left} records "
                                    f"pending; {errors[:1]}): its offsets are not committed")


@dataclass
class _Assembly:
    chunks: dict[str, dict[int, bytes]] = field(default_factory=dict)


class ModelReader:
    """Follows the model topic from its beginning; :meth:`poll` hands out each newer complete snapshot."""

    def __init__(self, settings: Settings) -> None:
        self.topic = model_topic(settings)
        self.consumer = Consumer(consumer_config(settings, f"{settings.kafka.group}-model-reader", in_group=False))
        self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self.latest: Snapshot | None = None
        self.live: set[bytes] = set()  # chunk keys with a value on the broker, as far as read
        self.skipped = 0  # torn or corrupt snapshots
        self.bytes_read = 0
        self._assemblies: dict[str, _Assembly] = {}
        self._files: dict[str, bytes] = {}  # the latest snapshot's, until taken

    def poll(self, timeout: float = 0.0, max_messages: int = 500) -> Snapshot | None:
        """Read what has arrived; the newest complete snapshot newer than the last one handed out."""
        newest: Snapshot | None = None
        for message in self.consumer.consume(max_messages, timeout):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("reading %s: %s", self.topic, error)
                continue
            key, value = message.key() or b"", message.value()
            self.bytes_read += len(key) + len(value or b"")
            if key == MANIFEST:
                snapshot = self._complete(value)
                if snapshot is not None:
                    newest = snapshot
            elif value is None:
                self.live.discard(key)
            else:
                self._chunk(key, value)
        return newest

    def read_to_end(self, timeout: float = 30.0) -> Snapshot | None:
        """Everything on the topic now; the newest complete snapshot (None: there is none)."""
        partition = TopicPartition(self.topic, 0)
        low, high = self.consumer.get_watermark_offsets(partition, timeout=timeout)
        deadline = time.monotonic() + timeout
        newest: Snapshot | None = None
        while True:
            position = self.consumer.position([partition])[0].offset
            if high <= low or position >= high:  # empty, or compacted down to nothing, or read
                return newest
            if time.monotonic() > deadline:
                raise KafkaServiceError(f"could not read {self.topic} to its end ({position} of {high}) "
                                        f"within {timeout:.0f}s")
            newest = self.poll(1.0) or newest

    def take_files(self, skip: Iterable[str] = ()) -> dict[str, bytes]:
        """The files of the snapshot :meth:`poll` last handed out (once: they are then released)."""
        files, self._files = self._files, {}
        return {name: data for name, data in files.items() if name not in set(skip)}

    def load(self, pipeline: Pipeline, with_windows: bool = False) -> None:
        """Load the snapshot last handed out into ``pipeline`` (its windows only ``with_windows``)."""
        from streamrec.state import WINDOWS_FILE  # state brings torch; the command line starts without it

        files = self.take_files(() if with_windows else (WINDOWS_FILE,))
        with tempfile.TemporaryDirectory(prefix="streamrec-snapshot-") as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            pipeline.load(tmp)

    def close(self) -> None:
        self.consumer.close()

    def _chunk(self, key: bytes, value: bytes) -> None:
        try:
            snapshot_id, name, n = key.decode().rsplit("/", 2)
            index = int(n)
        except (UnicodeDecodeError, ValueError):
            log.warning("skipping a record of %s with key %r: not a snapshot chunk", self.topic, key[:80])
            return
        self.live.add(key)
        self._assemblies.setdefault(snapshot_id, _Assembly()).chunks.setdefault(name, {})[index] = value

    def _complete(self, value: bytes | None) -> Snapshot | None:
        if value is None:
            return None
        try:
            snapshot = Snapshot.from_json(value)
        except (ValueError, TypeError, KeyError) as exc:
            self.skipped += 1
            log.warning("skipping a model manifest on %s: %s", self.topic, exc)
            return None
        assembly = self._assemblies.pop(snapshot.id, _Assembly())
        self._assemblies.clear()  # chunks before this manifest that are not its own: torn snapshots
        files: dict[str, bytes] = {}
        for name, meta in snapshot.files.items():
            parts = assembly.chunks.get(name, {})
            data = b"".join(parts.get(n, b"") for n in range(meta["chunks"]))
            if len(parts) != meta["chunks"] or len(data) != meta["bytes"] \
                    or hashlib.sha256(data).hexdigest() != meta["sha256"]:
                self.skipped += 1
                log.warning("skipping model snapshot %s on %s: %s is incomplete or corrupt", snapshot.id,
                            self.topic, name)
                return None
            files[name] = data
        if self.latest is not None and snapshot.version < self.latest.version:
            log.warning("skipping model snapshot %s: version %d is older than the %d already read (a second "
                        "trainer?)", snapshot.id, snapshot.version, self.latest.version)
            return None
        self.latest, self._files = snapshot, files
        return snapshot
