"""Shared by the fuzz tests (``test_*_fuzz.py``): Hypothesis strategies for arbitrary JSON- and
msgpack-shaped values, odd field values, and mutations of valid records and of valid bytes.

Imported as ``from fuzzkit import ...`` (tests/ is on ``sys.path``: it holds the root conftest.py).
Every fuzz test runs under :data:`FUZZ` (or a smaller count for the ones that write files), so
that all of them together take under 20 s on two cores; ``benchmarks/fuzz.py`` is the long run.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

#: Bounded for CI. No example database: the tests write nothing into the working tree.
FUZZ = settings(max_examples=100, database=None)
#: For the tests that write a file per example.
FUZZ_FILES = settings(max_examples=40, database=None, deadline=None)


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` alternating lists and maps."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


#: Values that break decoders: past every integer range, non-finite, empty, too long, a lone
#: surrogate (valid JSON ``"\\ud800"``, never valid UTF-8), HTML entities, nesting past msgpack's limits.
ODD = st.sampled_from([None, True, False, 0, -1, -(2**63), 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30, 10**400,
                       1.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf"), "", " ", "x" * 300, "é",
                       "\u202e", "\U0001f642", "\ud800", "&amp;amp;", "12", "1e400", [], [1, "a"], {}, {"k": "v"},
                       nested(40), nested(600), nested(1100)])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
#: Anything ``json.loads`` can return (and odd values inside it).
json_values = st.recursive(json_scalars | ODD, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=15)
msgpack_keys = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
                         st.text(max_size=10), st.binary(max_size=8))
msgpack_scalars = msgpack_keys | st.floats() | st.binary(max_size=20)
#: Anything ``msgpack.unpackb`` can return from what ``msgpack.packb`` writes.
msgpack_values = st.recursive(msgpack_scalars, lambda inner: st.lists(inner, max_size=4)
                              | st.dictionaries(msgpack_keys, inner, max_size=5), max_leaves=15)


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with 1-4 byte-level changes: a bit flipped, a byte set, bytes deleted or
    inserted, the end cut off, or another seed's tail spliced in."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for op in draw(st.lists(st.sampled_from(["flip", "set", "delete", "insert", "cut", "splice"]), min_size=1,
                            max_size=4)):
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[at % len(data)] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at % len(data)] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"\xff", b"\x00", b"\xdd\xff\xff\xff\xff", b"\x81\x91\x01\x02", b"[" * 3000, b"9" * 5000,
                 b'"\\ud800"', b"NaN", b"\n", b",", b"\t"]))
        elif op == "cut":
            del data[at:]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(0, len(other))):]
    return bytes(data)


@st.composite
def mutated_tree(draw: st.DrawFn, tree: Any, depth: int = 0) -> Any:
    """``tree`` (a record, a snapshot) with one value somewhere inside it dropped, replaced by an
    odd or arbitrary value, or a field added."""
    if (depth and draw(st.booleans())) or not isinstance(tree, (dict, list)) or not tree:
        return draw(ODD | json_values)
    out: Any = dict(tree) if isinstance(tree, dict) else list(tree)
    key = draw(st.sampled_from(list(out) if isinstance(out, dict) else range(len(out))))
    op = draw(st.sampled_from(["drop", "add", "change", "change"]))
    if op == "drop":
        del out[key]
    elif op == "add" and isinstance(out, dict):
        out[draw(st.sampled_from(["extra", "attributes", "event_id", "version", "users", "title"]))] = draw(ODD)
    else:
        out[key] = draw(mutated_tree(out[key], depth + 1))
    return out
