"""Fuzz targets that read files: checkpoint (safetensors) files, item catalogues, recorded logs.

Each input is a whole file: a seed file with its bytes mutated, or (checkpoints) rewritten with a
tensor or a metadata value changed. The seeds are what streamrec writes (a small head, item vectors,
both co-occurrence indexes and a ranker, each saved by its own ``save``) and the tiny logs of every
format under tests/fixtures/sources/ (MovieLens, Amazon, RecBole, generic CSV/TSV/JSONL/msgpack,
gzipped CSV).
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path
from typing import Any

import msgpack

from harness.fuzzing import Target, check_items, event_round_trip, mutate_bytes
from streamrec.sources import LogFormat

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "sources"
ODD_TEXT = ["", "x", "-1", "0", "7", "99999999999", "nan", "[]", "{}", "null", "[1, 2]", '["a", "a"]', '"',
            json.dumps([f"i{n}" for n in range(3)]), json.dumps([f"i{n}" for n in range(300)]), "weighted",
            "attention", "head,cooccurrence", "head", "1e400", "[" * 3000]
CSV_MAP = {"event_id": "eid", "user_id": "uid", "item_id": "product", "action": "kind", "timestamp": "ts"}
JSONL_MAP = {"user_id": "user", "item_id": "item", "timestamp": "time", "timestamp_unit": "s", "default_action": "view"}
#: name -> (fixture to copy, the path read_log gets, the files mutated, log_format, column_map, domain)
LOGS: dict[str, tuple[str, str, tuple[str, ...], LogFormat, dict[str, str] | None, str]] = {
    "csv": ("events.csv", "events.csv", ("events.csv",), "auto", CSV_MAP, "ecommerce"),
    "tsv": ("events.csv", "events.tsv", ("events.tsv",), "auto", CSV_MAP, "ecommerce"),
    "csv.gz": ("events.csv", "events.csv.gz", ("events.csv.gz",), "auto", CSV_MAP, "ecommerce"),
    "jsonl": ("events.jsonl", "events.jsonl", ("events.jsonl",), "auto", JSONL_MAP, "ecommerce"),
    "msgpack": ("events.jsonl", "events.msgpack", ("events.msgpack",), "auto", JSONL_MAP, "ecommerce"),
    "ml-100k": ("ml-100k", ".", ("u.data", "u.item", "u.genre"), "movielens", None, "video"),
    "ml-1m": ("ml-1m", ".", ("ratings.dat", "movies.dat"), "movielens", None, "video"),
    "ml-latest": ("ml-latest-small", ".", ("ratings.csv", "movies.csv"), "movielens", None, "video"),
    "amazon-2018": ("amazon-2018", "Books_5.json", ("Books_5.json", "meta_Books.json"), "auto", None, "ecommerce"),
    "amazon-2023": ("amazon-2023", "All_Beauty.jsonl", ("All_Beauty.jsonl", "meta_All_Beauty.jsonl"), "auto", None,
                    "ecommerce"),
    "recbole": ("recbole", ".", ("shop.inter", "shop.item"), "recbole", {"default_action": "purchase"}, "ecommerce"),
}


class StubEncoder:
    """An encoder of the right shape for item vectors (nothing is learned from them here)."""

    dim = 8

    def encode(self, texts: Any) -> Any:
        import torch

        return torch.stack([torch.full((8,), float(len(text) % 7)) for text in texts])


def fresh_component(name: str) -> Any:
    """A new component of each kind a state directory holds, as the pipeline builds it (small)."""
    from streamrec.catalog import Catalog, Item
    from streamrec.config import HeadSettings
    from streamrec.cooccurrence import ItemCooccurrence
    from streamrec.head import OnlineHead
    from streamrec.item_vectors import ItemVectors
    from streamrec.ranker import OnlineRanker
    from streamrec.sparse_cooccurrence import SparseCooccurrence
    from streamrec.text import TextTemplate

    if name == "head":
        return OnlineHead(8, HeadSettings(dim=8, context_items=3, replay_size=64), capacity=16)
    if name == "item_vectors":
        catalog = Catalog([Item(f"i{n}", f"Item {n}", "Kitchen") for n in range(6)])
        return ItemVectors(StubEncoder(), catalog, TextTemplate())
    if name == "cooccurrence":
        return ItemCooccurrence(history=3, capacity=16, max_items=64)
    if name == "sparse_cooccurrence":
        return SparseCooccurrence(history=3, slots=4, capacity=16)
    return OnlineRanker(["head", "cooccurrence", "text"])


def canonical(data: bytes) -> bytes:
    """The same safetensors file with its header's keys sorted: safetensors writes the metadata map
    in an order that changes from process to process, and a seed must be the same bytes every run
    (for ``--replay``)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    text = json.dumps({key: dict(sorted(value.items())) if key == "__metadata__" else value
                       for key, value in sorted(header.items())}, separators=(",", ":")).encode()
    text += b" " * max(0, size - len(text))  # the same length (the data offsets count from the header's end)
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


class CheckpointTarget(Target):
    """``checkpoint.tensors``: :func:`streamrec.checkpoint.load_tensors` of any seed's file;
    ``checkpoint.components``: each component's ``load`` of its own file, into a fresh component."""

    def __init__(self, name: str, work: Path) -> None:
        import torch

        from streamrec.errors import CheckpointError
        from streamrec.head import Example

        super().__init__(name, work)
        self.typed, self.path = CheckpointError, work / "checkpoint.safetensors"
        self.seeds: dict[str, bytes] = {}
        self.parts: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}  # name -> format, tensors, metadata
        for part in ("head", "item_vectors", "cooccurrence", "sparse_cooccurrence", "ranker"):
            component = fresh_component(part)
            if part == "head":
                component.learn(Example(torch.randn(6, 8), torch.full((6, 3), -1), torch.arange(6), torch.ones(6)),
                                torch.randn(6, 8))
            elif part.endswith("cooccurrence"):
                for n in range(5):
                    component.learn([n, (n + 1) % 6], (n + 2) % 6)
            ids = [f"i{n}" for n in range(6)]
            component.save(self.path, ids)
            self.seeds[part] = canonical(self.path.read_bytes())
            tensors, metadata = self._read(self.path)
            self.parts[part] = (metadata["format"], tensors, metadata)

    @staticmethod
    def _read(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
        return load_file(str(path)), metadata

    def make(self, rng: random.Random) -> Any:
        part = rng.choice(sorted(self.parts))
        if rng.random() < 0.5:
            return part, mutate_bytes(rng, self.seeds[part], list(self.seeds.values()))
        return part, self._rewritten(rng, part)

    def _rewritten(self, rng: random.Random, part: str) -> bytes:
        """The seed saved again with a tensor or a metadata value changed (a well-formed file, odd contents)."""
        import torch

        from streamrec.checkpoint import save_tensors

        fmt, tensors, metadata = self.parts[part]
        tensors, metadata = dict(tensors), dict(metadata)
        for _ in range(rng.choice((1, 1, 2, 3))):
            if tensors and rng.random() < 0.5:
                key = rng.choice(sorted(tensors))
                value = tensors.pop(key)
                odd = torch.full_like(value, float("nan")) if value.is_floating_point() else value - 10**6
                choices = [torch.zeros(0), value.flatten(), value.reshape(-1)[:1], value.to(torch.int64),
                           value.to(torch.float16), odd, torch.randint(-5, 10**6, value.shape),
                           torch.zeros(rng.randrange(4), rng.randrange(4))]
                if rng.random() < 0.9:
                    tensors[key] = rng.choice(choices).contiguous()
            else:
                key = rng.choice([*sorted(metadata), "extra"])
                metadata[key] = rng.choice(ODD_TEXT) if rng.random() < 0.85 else metadata.get(key, "")[::-1]
        path = self.work / "rewritten.safetensors"
        try:
            save_tensors(path, tensors, fmt if rng.random() < 0.9 else "streamrec-other-1", metadata)
        except Exception:  # safetensors refuses to write it (a lone surrogate in the metadata): bytes instead
            return mutate_bytes(rng, self.seeds[part], list(self.seeds.values()))
        return canonical(path.read_bytes())

    def decode(self, value: Any) -> Any:
        from streamrec.catalog import Catalog
        from streamrec.checkpoint import load_tensors

        part, data = value
        self.path.write_bytes(data)
        if self.name == "checkpoint.tensors":
            return load_tensors(self.path, self.parts[part][0], part)
        return fresh_component(part).load(self.path, Catalog().index_of)


class CatalogFileTarget(Target):
    """:func:`streamrec.catalog.read_items` of a .csv, .tsv or .jsonl item file."""

    def __init__(self, name: str, work: Path) -> None:
        from streamrec.errors import CatalogError

        super().__init__(name, work)
        self.typed = CatalogError
        rows = [("7", "Teapot", "Kitchen", "Acme"), ("8", "Salt &amp; Pepper", "", ""),
                ("é9", "Żuraw, The Crane", "Drama", "")]
        csv = "item_id,title,category,brand\n" + "".join(f'{i},"{t}",{c},{b}\n' for i, t, c, b in rows)
        tsv = "item_id\ttitle\tcategory\tbrand\n" + "".join("\t".join(row) + "\n" for row in rows)
        jsonl = "".join(json.dumps({"item_id": i, "title": t, "category": c, "attributes": {"brand": b}},
                                   ensure_ascii=False) + "\n" for i, t, c, b in rows)
        self.seeds = {".csv": csv.encode(), ".tsv": tsv.encode(), ".jsonl": jsonl.encode()}

    def make(self, rng: random.Random) -> Any:
        suffix = rng.choice(sorted(self.seeds))
        return suffix, mutate_bytes(rng, self.seeds[suffix], list(self.seeds.values()))

    def decode(self, value: Any) -> Any:
        from streamrec.catalog import read_items

        path = self.work / f"items{value[0]}"
        path.write_bytes(value[1])
        return list(read_items(path))

    def check(self, result: Any, value: Any) -> None:
        check_items(result)


class LogFileTarget(Target):
    """:func:`streamrec.sources.read_log` (a quarter of the generic ones: ``iter_log_records``) of one
    log of :data:`LOGS` with one of its files mutated."""

    def __init__(self, name: str, work: Path) -> None:
        from streamrec.errors import SourceError

        super().__init__(name, work)
        self.typed = SourceError
        self.originals: dict[tuple[str, str], bytes] = {}
        for log, (fixture, _, files, *_) in LOGS.items():
            home = work / "logs" / log
            if (FIXTURES / fixture).is_dir():
                shutil.copytree(FIXTURES / fixture, home)
            else:
                home.mkdir(parents=True)
                text = (FIXTURES / fixture).read_bytes()
                (home / files[0]).write_bytes(self._convert(files[0], text))
            for file in files:
                self.originals[log, file] = (home / file).read_bytes()

    @staticmethod
    def _convert(name: str, text: bytes) -> bytes:
        if name.endswith(".tsv"):
            return text.replace(b",", b"\t")
        if name.endswith(".gz"):
            return gzip.compress(text, mtime=0)
        if name.endswith(".msgpack"):
            records = []
            for line in text.splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    records.append(line.decode())
            return b"".join(msgpack.packb(record) for record in records)
        return text

    def make(self, rng: random.Random) -> Any:
        log = rng.choice(sorted(LOGS))
        file = rng.choice(LOGS[log][2])
        seed, records = self.originals[log, file], LOGS[log][3] == "auto" and rng.random() < 0.25
        if file.endswith(".gz") and rng.random() < 0.5:  # the text inside mutated, or the compressed bytes
            return log, file, gzip.compress(mutate_bytes(rng, gzip.decompress(seed), [seed]), mtime=0), records
        return log, file, mutate_bytes(rng, seed, [seed]), records

    def decode(self, value: Any) -> Any:
        from streamrec.events import ActionVocabulary
        from streamrec.sources import iter_log_records, read_log

        log, file, data, records = value
        _, target, _, log_format, column_map, domain = LOGS[log]
        home = self.work / "logs" / log
        (home / file).write_bytes(data)
        try:
            if records:
                return list(iter_log_records(home / target, log_format, column_map, rejected=[]))
            return read_log(home / target, ActionVocabulary.for_domain(domain), log_format, column_map)
        finally:
            (home / file).write_bytes(self.originals[log, file])

    def check(self, result: Any, value: Any) -> None:
        from streamrec.events import ActionVocabulary

        if isinstance(result, list):
            assert all(isinstance(location, str) and isinstance(record, dict) for location, record in result)
            return
        vocab = ActionVocabulary.for_domain(LOGS[value[0]][5])
        for event in result.events:
            event_round_trip(event, vocab, "msgpack")
        check_items(result.items)
        assert all(location and message for location, message in result.rejected)


FILE_TARGETS: dict[str, type[Target]] = {"checkpoint.tensors": CheckpointTarget,
                                         "checkpoint.components": CheckpointTarget,
                                         "catalog.file": CatalogFileTarget, "log.file": LogFileTarget}
