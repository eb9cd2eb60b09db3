"""Warm start from history (``streamrec/training.py``) and ``streamrec train``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from streamrec.catalog import Catalog
from streamrec.checkpoint import format_of, load_tensors
from streamrec.cli import app
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.errors import UsageError
from streamrec.events import Event
from streamrec.pipeline import Pipeline
from streamrec.state import COOCCURRENCE_FILE, HEAD_FILE
from streamrec.synthetic import SyntheticLog
from streamrec.training import hold_out_last, train

runner = CliRunner()
SMALL = {"batch": {"max_size": 32}, "head": {"replay_sample": 16, "negatives": 32}}


def _pipeline(make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, log: SyntheticLog) -> Pipeline:
    return Pipeline(make_settings(**SMALL), tiny_encoder, Catalog(log.items))


def test_hold_out_last_keeps_each_users_last_positive_event_of_enough_history(synthetic_log: SyntheticLog) -> None:
    events = synthetic_log.events
    train_events, held = hold_out_last(events, lambda action: action != "view", min_events=3)
    assert len(train_events) + len(held) == len(events)
    last = {e.user_id: e for e in events}
    for event in held:
        assert last[event.user_id] is event and event.action != "view"
    assert len({e.user_id for e in held}) == len(held)
    assert [e for e in events if e not in held] == train_events  # log order kept


def test_train_learns_the_history_once_and_the_head_for_more_epochs(
        make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog,
        tmp_path: Path) -> None:
    events = synthetic_log.events[:700]
    one = _pipeline(make_settings, tiny_encoder, synthetic_log)
    single = train(one, events, epochs=1)
    three = _pipeline(make_settings, tiny_encoder, synthetic_log)
    seen: list[int] = []
    report = train(three, events, epochs=3, patience=5, on_epoch=lambda epoch: seen.append(epoch.epoch))
    assert seen == [1, 2, 3] and [e.epoch for e in report.epochs] == [1, 2, 3]
    assert report.examples > 0 and single.examples == report.examples
    assert report.trained_events + report.validation_events == len(events) and report.validation_events > 0
    for epoch in report.epochs:
        assert set(epoch.validation) == {"hit@10", "ndcg@10", "users"}
        assert epoch.validation["users"] == report.validation_events
    assert report.best_epoch == max(report.epochs, key=lambda e: e.validation["ndcg@10"]).epoch
    # later epochs train only the head: counts of what happened (co-occurrence, windows) are not counted twice
    one.save(tmp_path / "one")
    three.save(tmp_path / "three")
    fmt = format_of(tmp_path / "one" / COOCCURRENCE_FILE) or ""
    counts_one, _ = load_tensors(tmp_path / "one" / COOCCURRENCE_FILE, fmt, "co-occurrence")
    counts_three, _ = load_tensors(tmp_path / "three" / COOCCURRENCE_FILE, fmt, "co-occurrence")
    assert counts_one.keys() == counts_three.keys()
    for name, tensor in counts_one.items():
        assert torch.equal(tensor, counts_three[name]), name
    assert (tmp_path / "one" / "windows.msgpack").read_bytes() == (tmp_path / "three" / "windows.msgpack").read_bytes()
    # ... and the held-out events were learned last, so each user's window ends with the whole log
    for user in {e.user_id for e in events}:
        assert three.windows.window(user)[-1] == [e for e in events if e.user_id == user][-1]
    # the head did learn more: more updates than a single pass made
    assert three.head.version > one.head.version


def test_train_keeps_the_best_epochs_head_and_stops_when_validation_stalls(
        make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import streamrec.training as training

    scores = iter([0.30, 0.50, 0.40, 0.45, 0.9])  # best at epoch 2, then two epochs without a gain
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    candidates = {"mode": "candidates", "candidates_cooccurrence": 12, "candidates_text": 8}
    pipeline = Pipeline(make_settings(**SMALL, retrieval=candidates), tiny_encoder, Catalog(synthetic_log.items))
    assert pipeline.served is not None
    held = {e.user_id for e in hold_out_last(synthetic_log.events[:700], pipeline.vocab.is_positive, 3)[1]}

    def scripted(p: Pipeline, events: list[Event], k: int) -> dict[str, float]:
        snapshots[len(snapshots) + 1] = {n: t.clone() for n, t in p.head.model.state_dict().items()}
        p.recommend([e.user_id for e in events])  # as validation does: the head's rows are served
        return {f"hit@{k}": 0.0, f"ndcg@{k}": next(scores), "users": 1.0}

    monkeypatch.setattr(training, "validate", scripted)
    # the held-out events are learned after the best head is restored: record the head right then
    restored: dict[str, torch.Tensor] = {}
    process = pipeline.process

    def first_process_after_training(events: object) -> object:
        if len(snapshots) == 4 and not restored:
            restored.update({n: t.clone() for n, t in pipeline.head.model.state_dict().items()})
            # and no rows served by the later head are learned from: the held-out users are scored afresh
            assert pipeline.served is not None and not any(user in pipeline.served for user in held)
        return process(events)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "process", first_process_after_training)
    report = train(pipeline, synthetic_log.events[:700], epochs=10, patience=2)
    assert [e.epoch for e in report.epochs] == [1, 2, 3, 4] and report.best_epoch == 2
    for name, tensor in snapshots[2].items():
        assert torch.equal(restored[name], tensor), name
    assert any(not torch.equal(snapshots[4][n], t) for n, t in snapshots[2].items())


def test_train_without_validation_runs_every_epoch_and_rejects_zero(
        make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog) -> None:
    pipeline = _pipeline(make_settings, tiny_encoder, synthetic_log)
    report = train(pipeline, synthetic_log.events[:600], epochs=2, validation=False)
    assert [e.epoch for e in report.epochs] == [1, 2] and report.validation_events == 0
    assert report.epochs[0].validation == {} and report.best_epoch == 2
    with pytest.raises(UsageError, match="epochs must be >= 1"):
        train(pipeline, synthetic_log.events, epochs=0)


def test_train_command_saves_a_state_that_replay_continues_from(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["generate", str(tmp_path), "--users", "40", "--items", "30"]).exit_code == 0
    state = tmp_path / "state"
    common = ["--catalog", str(tmp_path / "items.csv"), "--encoder", str(tiny_model_dir), "--batch-size", "16",
              "--no-progress"]
    result = runner.invoke(app, ["train", str(tmp_path / "events.csv"), "--state-dir", str(state), "--epochs", "2",
                                 "--patience", "5", *common])
    assert result.exit_code == 0, result.output
    assert "(kept)" in result.output and "validated on" in result.output
    saved = json.loads((state / "training.json").read_text())
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2] and saved["best_epoch"] in (1, 2)
    assert saved["validation_events"] > 0 and (state / HEAD_FILE).exists()
    # training again into the same directory would count the history twice: refused
    again = runner.invoke(app, ["train", str(tmp_path / "events.csv"), "--state-dir", str(state), *common])
    assert again.exit_code == 2 and "already holds a trained state" in again.output
    # replay starts from the trained state: its head's versions continue past the trained one's
    def replayed_version(*extra: str) -> int:
        metrics = tmp_path / "metrics.json"
        result = runner.invoke(app, ["replay", str(tmp_path / "events.csv"), "--limit", "48", "--metrics-out",
                                     str(metrics), *common, *extra])
        assert result.exit_code == 0, result.output
        return int(json.loads(metrics.read_text())["model_version"])

    fresh = replayed_version()
    assert fresh <= 3 < saved["examples"] // 16 < replayed_version("--state-dir", str(state))
