"""Fuzz inputs and the decoders they go to, for ``benchmarks/fuzz.py``.

Inputs are byte-level mutations (bit flips, random and "interesting" bytes, deletions, insertions,
splices, truncation, lines doubled or dropped) and field-level mutations (:func:`mutate_tree`:
a value somewhere inside a record dropped, retyped to an odd value, or added; huge and non-finite
numbers, lone surrogates, nesting past msgpack's limits) of valid seeds, drawn with :mod:`random`,
so one ``random.Random`` seed gives one input again.

A :class:`Target` is one decoder: it makes an input, decodes it, and checks an accepted value
against the next stage (re-encoded the way streamrec writes it, put into and restored from a
window snapshot) and a typed error for a clear message (or, for a Kafka message, a dead letter
that fits). Targets that read files are in :mod:`harness.fuzz_files`.

>>> rng = random.Random(0)
>>> target = make_target("event.json", Path("."))
>>> isinstance(target.make(rng), tuple)
True
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

#: target -> share of --inputs. File targets (checkpoints, catalogues, logs) write a file per input: fewer.
SHARES = {"event.msgpack": 0.24, "event.json": 0.24, "kafka.message": 0.10, "item.record": 0.14,
          "changelog.merge": 0.10, "windows.restore": 0.10, "checkpoint.tensors": 0.01,
          "checkpoint.components": 0.01, "catalog.file": 0.02, "log.file": 0.04}
#: target -> what it decodes, with which function.
DECODERS = {
    "event.msgpack": "msgpack events: `streamrec.events.decode_event`",
    "event.json": "JSON events: `streamrec.events.decode_event`",
    "kafka.message": "consumed messages: `kafka.messages.event_from_message`, a bad one's `dead_letter`",
    "item.record": "items-topic records: `kafka.items.parse_item` (`catalog.item_from_mapping`)",
    "changelog.merge": "1-3 changelog records: `kafka.changelog.merge_snapshots`, then `WindowStore.restore`",
    "windows.restore": "a state directory's windows.msgpack: `windows.WindowStore.restore`",
    "checkpoint.tensors": "a state directory's safetensors files: `checkpoint.load_tensors`",
    "checkpoint.components": "the same files: `load()` of the head, item vectors, both co-occurrence indexes, ranker",
    "catalog.file": "item files (.csv, .tsv, .jsonl): `catalog.read_items`",
    "log.file": "logs (CSV, TSV, CSV.gz, JSONL, msgpack, MovieLens 100k/1m/latest, Amazon 2018/2023, RecBole): "
                "`sources.read_log`, `sources.iter_log_records`",
}
INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xc0", b"\xc1", b"\xd9\xff", b"\xdd\xff\xff\xff\xff",
               b"\xdf\xff\xff\xff\xff", b"\xc7\x01\xff", b"\xd6\xff\x00", b"\x91" * 1100, b"\x81\x91\x01\x02",
               b"NaN", b"Infinity", b"-1", b"1e999", b"9" * 5000, b"[" * 2000, b"{", b"}", b'"', b'"\\ud800"',
               b"\xef\xbb\xbf", b",", b"\n", b"\r", b"\t", b"::", b"|", b'"' + b"x" * 140_000, b"\xb2"]
ODD_VALUES: list[Any] = [None, True, False, 0, -1, 2**63, 2**64 - 1, -(2**63), 1.5, float("nan"), float("inf"),
                         -0.0, 1e308, "", " ", "x" * 300, "é", "\u202e", "\U0001f642", "\ud800", "&amp;amp;", [],
                         [1, "a"], {}, {"k": "v"}, {1: 2}, b"\x00bin", 10**30, "12", "1e400", "view", "like"]


def mutate_bytes(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        pos, op = rng.randrange(len(buf) + 1), rng.randrange(9)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = rng.randrange(256)
        elif op == 2:
            del buf[pos:pos + rng.choice((1, 1, 2, 4, 16, 64))]
        elif op == 3:
            buf[pos:pos] = rng.randbytes(rng.choice((1, 2, 4, 8)))
        elif op == 4:
            buf[pos:pos] = rng.choice(INTERESTING)
        elif op == 5 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start:start + rng.randrange(1, 64)]
        elif op == 6:
            del buf[pos:]
        elif op == 7:
            other = rng.choice(seeds)
            buf = buf[:pos] + other[rng.randrange(len(other) + 1):]
        elif op == 8 and b"\n" in buf:  # a whole line doubled or dropped (text formats)
            lines = bytes(buf).split(b"\n")
            i = rng.randrange(len(lines))
            lines[i:i + 1] = [] if rng.random() < 0.5 else [lines[i], lines[i]]
            buf = bytearray(b"\n".join(lines))
    return bytes(buf)


def odd_value(rng: random.Random) -> Any:
    value = rng.choice(ODD_VALUES)
    if rng.random() < 0.1:  # deep nesting: past msgpack's and the window snapshot's limits too
        for _ in range(rng.choice((3, 40, 600, 1100))):
            value = [value] if rng.random() < 0.5 else {"k": value}
    return value


def mutate_tree(rng: random.Random, node: Any, depth: int = 0) -> Any:
    """``node`` with one value somewhere inside it dropped, replaced by an odd value, or added."""
    if (depth and rng.random() < 0.3) or not isinstance(node, (dict, list)) or not node:
        return odd_value(rng)
    out: Any = dict(node) if isinstance(node, dict) else list(node)
    key = rng.choice(list(out)) if isinstance(out, dict) else rng.randrange(len(out))
    roll = rng.random()
    if roll < 0.15:
        del out[key]
    elif roll < 0.25 and isinstance(out, dict):
        out[rng.choice(("extra", "attributes", "event_id", "version", "users", 7, ""))] = odd_value(rng)
    else:
        out[key] = mutate_tree(rng, out[key], depth + 1)
    return out


def encode(value: Any, fmt: str) -> bytes | None:
    """``value`` as JSON or msgpack; None when the format cannot hold it (the generator's limits)."""
    import msgpack

    try:
        if fmt == "json":
            return json.dumps(value, default=lambda o: o.hex() if isinstance(o, bytes) else str(o)).encode()
        return msgpack.packb(value, use_bin_type=True)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None


def structured(rng: random.Random, records: list[Any], seeds: list[bytes], fmt: str) -> bytes:
    """Mostly a mutated record or mutated bytes of a seed; sometimes arbitrary bytes."""
    roll = rng.random()
    data = encode(mutate_tree(rng, rng.choice(records)), fmt) if roll < 0.45 else None
    if data is not None:
        return mutate_bytes(rng, data, seeds) if rng.random() < 0.3 else data
    return mutate_bytes(rng, rng.choice(seeds), seeds) if roll < 0.92 else rng.randbytes(rng.randrange(80))


class Target:
    """One decoder: makes inputs, decodes one, checks an accepted value against the next stage."""

    typed: type[Exception]

    def __init__(self, name: str, work: Path) -> None:
        self.name, self.work = name, work

    def make(self, rng: random.Random) -> Any:
        raise NotImplementedError

    def decode(self, value: Any) -> Any:
        raise NotImplementedError

    def check(self, result: Any, value: Any) -> None:
        """Raise if an accepted ``result`` breaks the next stage."""

    def check_error(self, error: Exception, value: Any) -> None:
        """Raise if a typed ``error`` does not make a clear message (or dead letter)."""
        if not str(error).strip():
            raise AssertionError("a typed error without a message")


def sample_events() -> list[Any]:
    from streamrec.events import Event

    return [Event("u1", "i9", "purchase", 1_700_000_000_123, "e-1", {"price": "9.99"}), Event("u2", "7", "view", 5),
            Event("ü-3", "Öl", "cart", 0, None, {"tags": ["a", "b"], "n": 3, "x": 1.5, "nested": {"k": None}})]


def event_round_trip(event: Any, vocab: Any, fmt: str) -> None:
    """Re-encoded in its format it decodes to the same bytes; it goes in and out of a window snapshot."""
    from streamrec.events import decode_event, encode_event
    from streamrec.windows import WindowStore

    data = encode_event(event, fmt)  # type: ignore[arg-type]
    # max_bytes: a log's event may be larger than the topic takes (``streamrec produce`` refuses it)
    assert encode_event(decode_event(data, vocab, fmt, len(data)), fmt) == data  # type: ignore[arg-type]
    store = WindowStore()
    store.add(event)
    assert WindowStore().restore(store.snapshot()) == [event.user_id]


class EventTarget(Target):
    def __init__(self, name: str, work: Path) -> None:
        from streamrec.errors import EventError
        from streamrec.events import ActionVocabulary, encode_event

        super().__init__(name, work)
        self.typed, self.fmt = EventError, name.split(".")[1]
        self.vocab = ActionVocabulary.for_domain("ecommerce")
        self.records = [e.to_dict() for e in sample_events()]
        self.seeds = [encode_event(e, fmt) for e in sample_events() for fmt in ("json", "msgpack")]

    def make(self, rng: random.Random) -> Any:
        wire = "auto" if rng.random() < 0.8 else rng.choice(("json", "msgpack"))
        return structured(rng, self.records, self.seeds, self.fmt), wire

    def decode(self, value: Any) -> Any:
        from streamrec.events import decode_event

        return decode_event(value[0], self.vocab, value[1])

    def check(self, result: Any, value: Any) -> None:
        from streamrec.events import detect_format

        event_round_trip(result, self.vocab, detect_format(value[0]) if value[1] == "auto" else value[1])


class MessageTarget(EventTarget):
    """A consumed message: its event, or a dead letter that fits the dead-letter topic."""

    def make(self, rng: random.Random) -> Any:
        payload = None if rng.random() < 0.02 else structured(rng, self.records, self.seeds, rng.choice(("json",
                                                                                                        "msgpack")))
        headers = [(rng.choice(("trace", "reason", "source.offset")), rng.randbytes(rng.randrange(9000)))
                   for _ in range(rng.randrange(4))]
        return payload, rng.choice((64, 1024, 64 * 1024)), headers

    def decode(self, value: Any) -> Any:
        from confluent_kafka import Message

        from streamrec.kafka.messages import event_from_message

        message = Message(topic="events", partition=3, offset=41, value=value[0])
        return event_from_message(message, self.vocab, "auto", value[1])

    def check(self, result: Any, value: Any) -> None:
        from streamrec.events import detect_format

        assert result.event_id is not None
        event_round_trip(result, self.vocab, detect_format(value[0]))

    def check_error(self, error: Exception, value: Any) -> None:
        from streamrec.kafka.messages import MAX_ERROR_BYTES, MAX_KEPT_HEADER_BYTES, dead_letter

        super().check_error(error, value)
        letter = dead_letter(b"u1", value[0], value[2], error, "events", 3, 41, value[1])  # type: ignore[arg-type]
        assert letter.value is None or len(letter.value) <= value[1]
        kept = letter.headers[:-5] if letter.headers[-1][0] != "original.size" else letter.headers[:-6]
        assert sum(len(k) + len(v or b"") for k, v in kept) <= MAX_KEPT_HEADER_BYTES
        assert dict(letter.headers)["reason"] == error.reason.encode()  # type: ignore[attr-defined]
        assert len(dict(letter.headers)["error"] or b"") <= MAX_ERROR_BYTES


class ItemTarget(Target):
    def __init__(self, name: str, work: Path) -> None:
        from streamrec.catalog import Item
        from streamrec.errors import CatalogError
        from streamrec.kafka.items import item_record

        super().__init__(name, work)
        self.typed = CatalogError
        items = [Item("7", "Teapot", "Kitchen", {"brand": "Acme"}), Item("8", "Salt &amp; Pepper"),
                 Item("é9", "Żuraw – The Crane", "Animation, Drama", {"year": "2012", "price": "9.5"})]
        self.records = [item.to_dict() for item in items]
        self.seeds = [item_record(item, fmt) for item in items for fmt in ("json", "msgpack")]

    def make(self, rng: random.Random) -> Any:
        return structured(rng, self.records, self.seeds, rng.choice(("json", "msgpack")))

    def decode(self, value: Any) -> Any:
        from streamrec.kafka.items import parse_item

        return parse_item(value)

    def check(self, result: Any, value: Any) -> None:
        check_items([result])


def check_items(items: list[Any]) -> None:
    """Items are text, and go onto the items topic and back (the same, unless an entity is unescaped again)."""
    from streamrec.kafka.items import item_record, parse_item

    for item in items:
        for fmt in ("json", "msgpack"):
            again = parse_item(item_record(item, fmt))
            assert again == item or "&" in item.title + item.category, (again, item)


class WindowsTarget(Target):
    """``windows.restore``: a windows.msgpack state file; ``changelog.merge``: changelog records merged, restored."""

    def __init__(self, name: str, work: Path) -> None:
        import msgpack

        from streamrec.errors import CheckpointError
        from streamrec.events import ActionVocabulary
        from streamrec.windows import WindowStore

        super().__init__(name, work)
        self.typed, self.vocab = CheckpointError, ActionVocabulary.for_domain("ecommerce")
        store = WindowStore()
        for n, event in enumerate(sample_events() * 3):
            store.add(type(event)(event.user_id, f"i{n}", event.action, event.timestamp + n, f"e{n}", event.attributes))
        self.seeds = [store.snapshot(), *(store.snapshot([user]) for user in store.users())]
        self.records = [msgpack.unpackb(seed, strict_map_key=False) for seed in self.seeds]

    def make(self, rng: random.Random) -> Any:
        return [structured(rng, self.records, self.seeds, "msgpack") if rng.random() < 0.7 else rng.choice(self.seeds)
                for _ in range(1 if self.name == "windows.restore" else rng.randrange(1, 4))]

    def decode(self, value: Any) -> Any:
        from streamrec.kafka.changelog import merge_snapshots
        from streamrec.windows import WindowStore

        store = WindowStore()
        store.restore(value[0] if self.name == "windows.restore" else merge_snapshots(value))
        return store

    def check(self, result: Any, value: Any) -> None:
        """Restored windows hold valid events, and take the user's next event."""
        from streamrec.events import Event, event_from_mapping

        for user in list(result.users()):
            for event in result.window(user):
                assert event_from_mapping(event.to_dict(), self.vocab) == event, event
            result.add(Event(user, "next", "view", 2**62, "next-event"))
        result.snapshot()


IN_MEMORY: dict[str, type[Target]] = {"event.msgpack": EventTarget, "event.json": EventTarget,
                                      "kafka.message": MessageTarget, "item.record": ItemTarget,
                                      "changelog.merge": WindowsTarget, "windows.restore": WindowsTarget}


def make_target(name: str, work: Path) -> Target:
    """The target called ``name`` (a key of :data:`SHARES`); ``work``: a directory for its files."""
    if name in IN_MEMORY:
        return IN_MEMORY[name](name, work)
    from harness.fuzz_files import FILE_TARGETS

    return FILE_TARGETS[name](name, work)
