"""Fuzzed recorded logs (``streamrec/sources/``): every format, one of its files with any bytes.

:func:`read_log` returns valid events (each one storable in a window snapshot), item text and
located rejections, or raises a :class:`SourceError`; :func:`iter_log_records` yields records or
raises a :class:`SourceError`. Nothing else escapes, whatever a file holds.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import msgpack
import pytest
from fuzzkit import FUZZ_FILES, mutated_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from sourceskit import CSV_MAP, ECOMMERCE, FIXTURES, JSONL_MAP, VIDEO

from streamrec.errors import SourceError
from streamrec.events import ActionVocabulary, encode_event, event_from_mapping
from streamrec.sources import iter_log_records, read_log
from streamrec.windows import WindowStore

MSGPACK_LOG = b"".join(msgpack.packb(r) for r in [{"user": "u1", "item": 10, "time": 3}, ["a", "list"],
                                                  {"user": "u2", "item": 11, "time": 2, "action": "cart"}])
#: name -> (fixture copied, the path read, the files mutated, log_format, column_map, vocabulary)
LOGS: dict[str, tuple[str, str, tuple[str, ...], Any, dict[str, str] | None, ActionVocabulary]] = {
    "csv": ("events.csv", "events.csv", ("events.csv",), "auto", CSV_MAP, ECOMMERCE),
    "tsv": ("events.csv", "events.tsv", ("events.tsv",), "auto", CSV_MAP, ECOMMERCE),
    "csv.gz": ("events.csv", "events.csv.gz", ("events.csv.gz",), "auto", CSV_MAP, ECOMMERCE),
    "jsonl": ("events.jsonl", "events.jsonl", ("events.jsonl",), "auto", JSONL_MAP, ECOMMERCE),
    "msgpack": ("events.jsonl", "events.msgpack", ("events.msgpack",), "auto", JSONL_MAP, ECOMMERCE),
    "ml-100k": ("ml-100k", ".", ("u.data", "u.item", "u.genre"), "movielens", None, VIDEO),
    "ml-1m": ("ml-1m", ".", ("ratings.dat", "movies.dat"), "movielens", None, VIDEO),
    "ml-latest": ("ml-latest-small", ".", ("ratings.csv", "movies.csv"), "movielens", None, VIDEO),
    "amazon-2018": ("amazon-2018", "Books_5.json", ("Books_5.json", "meta_Books.json"), "auto", None, ECOMMERCE),
    "amazon-2023": ("amazon-2023", "All_Beauty.jsonl", ("All_Beauty.jsonl", "meta_All_Beauty.jsonl"), "auto", None,
                    ECOMMERCE),
    "recbole": ("recbole", ".", ("shop.inter", "shop.item"), "recbole", {"default_action": "purchase"}, ECOMMERCE),
}


def copy_log(name: str, home: Path) -> Path:
    """The fixture of log ``name`` copied into ``home`` (tsv, gz and msgpack made from the csv/jsonl)."""
    fixture, target, files, *_ = LOGS[name]
    if (FIXTURES / fixture).is_dir():
        shutil.copytree(FIXTURES / fixture, home, dirs_exist_ok=True)
    else:
        text = (FIXTURES / fixture).read_bytes()
        converted = {".tsv": text.replace(b",", b"\t"), ".gz": gzip.compress(text), ".msgpack": MSGPACK_LOG}
        (home / files[0]).write_bytes(converted.get(Path(files[0]).suffix, text))
    return home / target


def assert_valid(log: Any, vocab: ActionVocabulary) -> None:
    for event in log.events:
        assert event_from_mapping(event.to_dict(), vocab) == event
        store = WindowStore()
        store.add(event)
        assert WindowStore().restore(store.snapshot()) == [event.user_id] and encode_event(event)
    for item in log.items:
        assert item.item_id and item.title and (item.title + item.category).encode()
    assert all(location and message for location, message in log.rejected)


@settings(FUZZ_FILES, max_examples=25)
@pytest.mark.parametrize("name", sorted(LOGS))
@given(data=st.data())
def test_a_log_with_any_bytes_in_one_file_reads_or_is_a_source_error(
        tmp_path_factory: pytest.TempPathFactory, name: str, data: st.DataObject) -> None:
    _, _, files, log_format, column_map, vocab = LOGS[name]
    home = tmp_path_factory.mktemp(name)
    path = copy_log(name, home)
    file = data.draw(st.sampled_from(files))
    original = (home / file).read_bytes()
    inside = file.endswith(".gz") and data.draw(st.booleans())  # mutate the text, or the compressed bytes
    mutated = data.draw(mutated_bytes([gzip.decompress(original) if inside else original]))
    (home / file).write_bytes(gzip.compress(mutated) if inside else mutated)
    try:
        if log_format == "auto" and data.draw(st.booleans()):
            rejected: list[tuple[str, str]] = []
            assert all(isinstance(record, dict) for _, record in iter_log_records(path, log_format, column_map,
                                                                                  rejected=rejected))
        else:
            assert_valid(read_log(path, vocab, log_format, column_map), vocab)
    except SourceError as exc:
        assert str(exc) and exc.reason == "source"


def written(home: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (home / name).write_bytes(data)
    return home / next(iter(files))


HEADER = b"user_id,item_id,action,timestamp\n"


@pytest.mark.parametrize(("name", "files", "column_map", "rejected"), [
    ("deep-json-line", {"a.jsonl": b'{"user_id": "u", "item_id": "i", "action": "view", "timestamp": 1}\n'
                        + b"{\"a\": " + b"[" * 100_000 + b"\n"}, None, "not valid JSON"),
    ("4300-digit-seconds", {"a.csv": HEADER + b"u,i,view," + b"9" * 4300 + b"\n"}, {"timestamp_unit": "s"},
     "at most 9223372036854775807"),
    ("1e308-seconds", {"a.csv": HEADER + b"u,i,view,1e308\n"}, {"timestamp_unit": "s"}, "finite"),
    ("huge-order-value", {"a.jsonl": b'{"user_id": "u", "item_id": "i", "action": "view", "timestamp": 1, "pos": '
                          + b"9" * 400 + b"}\n"}, {"order": "pos"}, "'attributes'"),
    ("amazon-4300-digits", {"Books_5.json": b'{"reviewerID": "r", "asin": "a", "overall": 5, "unixReviewTime": '
                            + b"9" * 4300 + b"}\n"}, None, "at most 9223372036854775807"),
])
def test_records_that_once_crashed_a_reader_are_rejected(tmp_path: Path, name: str, files: dict[str, bytes],
                                                         column_map: dict[str, str] | None, rejected: str) -> None:
    log = read_log(written(tmp_path, files), ECOMMERCE, column_map=column_map)
    assert rejected in log.rejected[-1][1] and all(event.timestamp == 1 for event in log.events)


@pytest.mark.parametrize(("name", "files", "log_format", "column_map", "error"), [
    ("recbole-not-utf8", {"x.inter": b"user_id:token\titem_id:token\ttimestamp:float\n1\t\xff\t3\n"}, "auto",
     {"default_action": "view"}, "unreadable"),
    ("csv-gz-cut", {"a.csv.gz": gzip.compress(HEADER + b"u,i,view,1\n" * 50)[:40]}, "auto", None, "unreadable"),
    ("jsonl-gz-corrupt", {"a.jsonl.gz": b"\x1f\x8b\x08\x00" + b"\x00" * 20}, "auto", None, "damaged gzip"),
    ("msgpack-gz-not-gzip", {"a.msgpack.gz": b"not gzip at all"}, "auto", None, "damaged gzip"),
    ("amazon-deep-first-line", {"Books_5.json": b"{\"a\": " + b"[" * 100_000 + b"\n"}, "auto", None,
     "no line holds a JSON object"),
])
def test_files_that_once_crashed_a_reader_are_source_errors(tmp_path: Path, name: str, files: dict[str, bytes],
                                                            log_format: Any, column_map: dict[str, str] | None,
                                                            error: str) -> None:
    with pytest.raises(SourceError, match=error):
        read_log(written(tmp_path, files), ECOMMERCE, log_format, column_map)


@pytest.mark.parametrize(("file", "line", "check"), [
    ("u.genre", b"Foo|\xb2\n", "loads"),  # '²' passes isdigit() but not int()
    ("u.genre", b"Foo|" + b"9" * 5000 + b"\n", "loads"),  # int() refuses over 4300 digits
    ("u.data", b"1\t2\t5\t" + b"9" * 4300 + b"\n", "past int64"),
])
def test_movielens_files_that_once_crashed_the_reader(tmp_path: Path, file: str, line: bytes, check: str) -> None:
    shutil.copytree(FIXTURES / "ml-100k", tmp_path, dirs_exist_ok=True)
    (tmp_path / file).write_bytes((tmp_path / file).read_bytes() + line)
    log = read_log(tmp_path, VIDEO)
    assert log.events and (check == "loads" or any(check in message for _, message in log.rejected))


def test_an_ml_latest_movies_file_that_is_not_utf8_is_a_source_error(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "ml-latest-small", tmp_path, dirs_exist_ok=True)
    (tmp_path / "movies.csv").write_bytes((tmp_path / "movies.csv").read_bytes() + b"5,\xff\xfe,Drama\n")
    with pytest.raises(SourceError, match=r"movies\.csv' near line \d+: unreadable"):
        read_log(tmp_path, VIDEO)
