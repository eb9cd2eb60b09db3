import json
import logging

from streamrec.logs import JsonFormatter, TextFormatter


def record_with(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("streamrec.kafka", logging.WARNING, __file__, 1, "bad message: %s", ("schema",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_partition_and_offset() -> None:
    entry = json.loads(JsonFormatter().format(record_with(topic="events", partition=3, offset=42)))
    assert entry["message"] == "bad message: schema" and entry["level"] == "WARNING"
    assert (entry["topic"], entry["partition"], entry["offset"]) == ("events", 3, 42)


def test_text_lines_append_extras() -> None:
    line = TextFormatter().format(record_with(partition=3, offset=42))
    assert line.endswith("bad message: schema partition=3 offset=42")
