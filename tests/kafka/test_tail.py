"""``streamrec tail``: decoding either format, the text people read, and following a topic read_committed."""

from __future__ import annotations

import json
import threading
from contextlib import closing

import msgpack
import pytest
from confluent_kafka import Producer
from kafkakit import KafkaKit
from rich.console import Console

from streamrec.config import Settings, load_settings
from streamrec.errors import RecommendationError
from streamrec.kafka.clients import KafkaServiceError
from streamrec.kafka.tail import decode_recommendation, follow, render, tail
from streamrec.recommendations import Recommendation, RecommendedItem

EVENT_TIME = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


def rec(user: str = "u1", source: dict[str, object] | None = None, n_items: int = 3) -> Recommendation:
    items = [RecommendedItem(str(n), 1.0 - n / 10, f"because you viewed Item {n + 10}" if n % 2 == 0 else "",
                             f"Item {n}" if n != 1 else "") for n in range(n_items)]
    return Recommendation(user, items, "Recommended for you: ...", 12, EVENT_TIME, EVENT_TIME + 250,
                          source if source is not None else {"topic": "events", "partition": 2, "offset": 41,
                                                             "timestamp": EVENT_TIME + 50})


def text_of(rendered: object) -> str:
    console = Console(record=True, width=300)
    console.print(rendered)
    return console.export_text()


def test_json_and_msgpack_values_decode_to_the_same_recommendation() -> None:
    assert decode_recommendation(rec().to_json().encode()) == rec()
    assert decode_recommendation(rec().to_msgpack()) == rec()
    assert decode_recommendation(b"  " + rec().to_json().encode()) == rec()  # leading whitespace: still JSON


@pytest.mark.parametrize("value", [b"", b"\xc1", b"{not json", b'{"user_id": "u"}', msgpack.packb([1, 2]),
                                   json.dumps({**rec().to_dict(), "extra": 1}).encode(), msgpack.packb("text")])
def test_anything_else_is_a_recommendation_error(value: bytes) -> None:
    with pytest.raises(RecommendationError, match="not a recommendation"):
        decode_recommendation(value)


def test_render_shows_who_when_which_model_and_the_top_items_with_reasons() -> None:
    lines = text_of(render(rec(n_items=7), top=5)).splitlines()
    assert lines[0] == ("u1  model v12  event 2023-11-14 22:13:20  200 ms after produce  events[2]@41")
    assert lines[1].split() == ["1.", "Item", "0", "1.00", "-", "because", "you", "viewed", "Item", "10"]
    assert lines[2].split() == ["2.", "1", "0.90"]  # no title: the item id; no reason: nothing after the score
    assert [line.split()[0] for line in lines[1:]] == ["1.", "2.", "3.", "4.", "5."]  # top 5 of 7


def test_render_without_a_source_has_no_lag_or_origin() -> None:
    first = text_of(render(rec(source={}))).splitlines()[0]
    assert first == "u1  model v12  event 2023-11-14 22:13:20"


@pytest.fixture
def settings(kit: KafkaKit) -> Settings:
    return load_settings(kafka={"bootstrap_servers": kit.bootstrap})


@pytest.mark.kafka
def test_tail_prints_committed_recommendations_and_skips_what_is_not_one(kit: KafkaKit, settings: Settings) -> None:
    topic = kit.create_topic("recs", 2)
    kit.produce(topic, [(b"a", rec("a").to_json().encode()), (b"x", b"garbage"), (b"b", rec("b").to_msgpack())])
    aborted = Producer({"bootstrap.servers": kit.bootstrap, "transactional.id": kit.name("tail-txn")})
    aborted.init_transactions(30)
    aborted.begin_transaction()
    aborted.produce(topic, rec("never-committed").to_json().encode(), key=b"n")
    aborted.flush(30)
    aborted.abort_transaction(30)

    console = Console(record=True, width=300)
    assert tail(settings, topic, from_beginning=True, idle_timeout_s=2, console=console) == 2
    shown = console.export_text()
    assert "skipped a record: not a recommendation" in shown
    assert {line.split()[0] for line in shown.splitlines() if "model v12" in line} == {"a", "b"}
    assert "never-committed" not in shown  # read_committed: an aborted transaction is never shown

    quiet = Console(record=True, width=300)
    assert tail(settings, topic, max_count=1, from_beginning=True, console=quiet) == 1  # stops at max without idling
    assert tail(settings, topic, max_count=0, console=quiet) == 0


@pytest.mark.kafka
def test_tail_as_json_prints_one_recommendation_per_line(kit: KafkaKit, settings: Settings,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    topic = kit.create_topic("recs-json", 1)
    kit.produce(topic, [(b"a", rec("a").to_msgpack()), (b"b", rec("b").to_json().encode())])
    assert tail(settings, topic, from_beginning=True, idle_timeout_s=2, as_json=True,
                console=Console(force_terminal=False)) == 2
    lines = capsys.readouterr().out.splitlines()
    assert [Recommendation.from_dict(json.loads(line)) for line in lines] == [rec("a"), rec("b")]


@pytest.mark.kafka
def test_follow_from_the_end_sees_only_new_records(kit: KafkaKit, settings: Settings) -> None:
    topic = kit.create_topic("recs-new", 1)
    kit.produce(topic, [(b"old", b"old value")])
    assert list(follow(settings, topic, from_beginning=True, idle_timeout_s=1.5)) == [b"old value"]
    assert list(follow(settings, topic, from_beginning=False, idle_timeout_s=1.5)) == []

    received = threading.Event()

    def keep_producing() -> None:  # until the follower sees one: its assignment takes effect at some point
        n = 0
        while not received.wait(0.3):
            kit.produce(topic, [(b"new", f"new {n}".encode())])
            n += 1

    producer = threading.Thread(target=keep_producing, daemon=True)
    producer.start()
    try:
        with closing(follow(settings, topic, from_beginning=False, idle_timeout_s=20)) as values:
            first = next(values, None)
    finally:
        received.set()
        producer.join(30)
    assert first is not None and first.startswith(b"new ")


@pytest.mark.kafka
def test_a_missing_topic_is_an_error_and_is_not_created(kit: KafkaKit, settings: Settings) -> None:
    missing = kit.name("no-such-recs")
    with pytest.raises(KafkaServiceError, match=f"topic '{missing}' does not exist"):
        list(follow(settings, missing, idle_timeout_s=1))
    assert missing not in kit.admin.list_topics(timeout=10).topics
