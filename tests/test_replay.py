import json
from collections.abc import Callable
from pathlib import Path

import pytest

from streamrec.config import Settings
from streamrec.errors import SourceError
from streamrec.replay import replay_files
from streamrec.synthetic import SyntheticLog, write_events, write_items

MakeSettings = Callable[..., Settings]
FIXED_KEYS = {"hit@10", "ndcg@10", "mrr@10", "coverage@10", "events", "scored_events", "users", "items",
              "events_per_second", "wall_seconds"}


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "msgpack"])
def test_replay_files_writes_recommendations_and_metrics(
    make_settings: MakeSettings, synthetic_log: SyntheticLog, tmp_path: Path, suffix: str
) -> None:
    events = synthetic_log.events[:300]
    log = write_events(events, tmp_path / f"events.{suffix}")
    catalog = write_items(synthetic_log.items, tmp_path / "items.csv")
    metrics = replay_files(make_settings(), log, catalog, out_path=tmp_path / "recs.jsonl",
                           metrics_path=tmp_path / "metrics.json", progress=False)
    assert set(metrics) >= FIXED_KEYS
    assert metrics["events"] == 300 and metrics["users"] == len({e.user_id for e in events})
    assert metrics["items"] == len(synthetic_log.items) and metrics["rejected_records"] == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["events"] == 300
    recs = [json.loads(line) for line in (tmp_path / "recs.jsonl").read_text().splitlines()]
    assert len(recs) == metrics["recommendations"] > 0
    assert set(recs[0]) == {"user_id", "items", "text", "model_version", "event_time", "produced_at"}
    assert set(recs[0]["items"][0]) == {"item_id", "score", "reason", "title"}


def test_bad_rows_are_reported_and_the_rest_replays(
    make_settings: MakeSettings, synthetic_log: SyntheticLog, tmp_path: Path
) -> None:
    log = tmp_path / "events.csv"
    log.write_text("user_id,item_id,action,timestamp\nu1,1,view,1000\nu1,2,dance,2000\nu1,3,view,soon\n"
                   "u1,4,view,3000\n")
    metrics = replay_files(make_settings(), log, write_items(synthetic_log.items, tmp_path / "i.csv"),
                           progress=False)
    assert metrics["events"] == 2 and metrics["rejected_records"] == 2


def test_head_state_carries_over_between_replays(
    make_settings: MakeSettings, synthetic_log: SyntheticLog, tmp_path: Path
) -> None:
    catalog = write_items(synthetic_log.items, tmp_path / "items.csv")
    first = write_events(synthetic_log.events[:200], tmp_path / "a.csv")
    second = write_events(synthetic_log.events[200:400], tmp_path / "b.csv")
    one = replay_files(make_settings(), first, catalog, state_dir=tmp_path / "state", progress=False)
    two = replay_files(make_settings(), second, catalog, state_dir=tmp_path / "state", progress=False)
    assert (tmp_path / "state" / "head.safetensors").exists()
    assert two["model_version"] > one["model_version"] > 0


def test_missing_log_is_a_clear_error(make_settings: MakeSettings, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        replay_files(make_settings(), tmp_path / "nope.csv", progress=False)
