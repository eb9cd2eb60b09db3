"""The published recommendation: its fields on the wire, and exact round trips through JSON and msgpack."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import msgpack
import pytest

from streamrec.catalog import Catalog
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.events import Event
from streamrec.pipeline import Pipeline
from streamrec.recommendations import Recommendation, RecommendedItem
from streamrec.synthetic import SyntheticLog


def _rec(**changes: object) -> Recommendation:
    rec = Recommendation(
        user_id="u7",
        items=[RecommendedItem("12", 0.91234, "because you viewed Copper Kettle (Kitchen)", "Teapot (Kitchen)"),
               RecommendedItem("3", -0.5, "popular right now")],
        text="Recommended for you: Teapot (Kitchen), item 3",
        model_version=42, event_time=1_700_000_000_123, produced_at=1_700_000_000_456,
        source={"topic": "events", "partition": 2, "offset": 99, "timestamp": 1_700_000_000_123})
    return dataclasses.replace(rec, **changes)  # type: ignore[arg-type]


def test_the_wire_fields_and_an_empty_source_left_out() -> None:
    data = _rec().to_dict()
    assert list(data) == ["user_id", "items", "text", "model_version", "event_time", "produced_at", "source"]
    assert data["items"][0] == {"item_id": "12", "score": 0.91234, "reason": "because you viewed Copper Kettle "
                                "(Kitchen)", "title": "Teapot (Kitchen)"}
    assert data["items"][1]["title"] == ""  # an item without a title is still a complete record
    replay_rec = _rec(source={})  # a file replay has no topic/partition/offset to report
    assert "source" not in replay_rec.to_dict() and "source" not in json.loads(replay_rec.to_json())
    assert Recommendation.from_dict(replay_rec.to_dict()) == replay_rec


@pytest.mark.parametrize("source", [{}, {"topic": "events", "partition": 0, "offset": 5, "consumed_at": 6}])
def test_json_and_msgpack_round_trip_exactly(source: dict[str, object]) -> None:
    rec = _rec(source=source)
    assert Recommendation.from_dict(json.loads(rec.to_json())) == rec
    assert Recommendation.from_msgpack(rec.to_msgpack()) == rec
    assert msgpack.unpackb(rec.to_msgpack(), raw=False) == json.loads(rec.to_json())  # the same record either way
    parsed = Recommendation.from_msgpack(rec.to_msgpack())
    assert all(isinstance(item, RecommendedItem) for item in parsed.items)


def test_chinese_text_stays_readable_in_json() -> None:
    rec = _rec(text="推荐给您的商品有：商品1,商品2", items=[RecommendedItem("1", 1.0, "因为您浏览了商品3", "商品1")])
    published = rec.to_json()
    assert "推荐给您的商品有：商品1,商品2" in published and "因为您浏览了商品3" in published
    assert "\\u" not in published
    assert Recommendation.from_dict(json.loads(published)) == rec


def test_a_record_that_is_not_a_recommendation_is_refused() -> None:
    data = _rec().to_dict()
    with pytest.raises(KeyError):
        Recommendation.from_dict({k: v for k, v in data.items() if k != "items"})
    with pytest.raises(TypeError):
        Recommendation.from_dict({k: v for k, v in data.items() if k != "model_version"})
    with pytest.raises(TypeError):
        Recommendation.from_dict({**data, "items": [{"item_id": "1", "score": 1.0}]})  # no reason
    with pytest.raises(TypeError):
        Recommendation.from_dict({**data, "unexpected": 1})


def test_recommendations_are_immutable() -> None:
    rec = _rec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.text = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.items[0].score = 0.0  # type: ignore[misc]


def test_a_pipelines_recommendation_reads_as_text_with_its_reasons_and_round_trips(
        make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog) -> None:
    catalog = Catalog(synthetic_log.items)
    for language, prefix, separator, because in (("en", "Recommended for you: ", ", ", "because you "),
                                                 ("zh", "推荐给您的商品有：", ",", "因为您")):
        settings = make_settings(retrieval={"k": 4}, text={"language": language})
        pipeline = Pipeline(settings, tiny_encoder, catalog, clock=lambda: 1_700_000_100.0)
        events = [Event("u", "1", "view", 1_700_000_000_000), Event("u", "2", "cart", 1_700_000_050_000)]
        [rec] = pipeline.process(events).recommendations
        assert rec.text == prefix + separator.join(item.title for item in rec.items)
        assert len(rec.items) == 4 and all(item.reason.startswith(because) for item in rec.items)
        assert (rec.event_time, rec.produced_at) == (1_700_000_050_000, 1_700_000_100_000)
        assert Recommendation.from_dict(json.loads(rec.to_json())) == rec
        assert Recommendation.from_msgpack(rec.to_msgpack()) == rec
