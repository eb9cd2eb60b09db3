"""Forgetting a user: the request's header, a pipeline that drops every trace of the user it
holds in memory, and a local state directory rewritten without them (also from the command line)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from typer.testing import CliRunner

from streamrec.catalog import Catalog
from streamrec.cli import app
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.errors import CheckpointError
from streamrec.forget import forget_headers, forget_in_state_dir, is_forget_request
from streamrec.pipeline import Pipeline
from streamrec.state import WINDOWS_FILE
from streamrec.synthetic import SyntheticLog


@pytest.mark.parametrize(("headers", "expected"), [
    (forget_headers(), True),
    ([("trace", b"x"), ("streamrec.action", "forget")], True),
    ({"streamrec.action": b"forget"}, True),
    ([("streamrec.action", b"forgot")], False),
    ([("streamrec.action", None)], False),
    ([("other", b"forget")], False),
    (None, False),
])
def test_a_forget_request_is_named_by_its_action_header(headers: object, expected: bool) -> None:
    assert is_forget_request(headers) is expected  # type: ignore[arg-type]


def _pipeline(make_settings: Callable[..., Settings], encoder: HFEncoder, log: SyntheticLog) -> Pipeline:
    settings = make_settings(encoder={"mode": "incremental"}, batch={"max_size": 32})
    pipeline = Pipeline(settings, encoder, Catalog(log.items))
    for start in range(0, 300, 32):
        pipeline.process(log.events[start:start + 32])
    return pipeline


def test_dropping_a_user_removes_their_window_cache_vector_and_served_rows(
        make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog) -> None:
    pipeline = _pipeline(make_settings, tiny_encoder, synthetic_log)
    user, other = synthetic_log.events[299].user_id, synthetic_log.events[0].user_id
    assert user != other
    encoder = pipeline.window_encoder
    assert user in pipeline.windows and encoder.view(user)  # type: ignore[attr-defined]
    before = pipeline.windows.window(other)
    pipeline.drop_users([user])
    assert user not in pipeline.windows and not pipeline.windows.seen_items(user)
    assert encoder.view(user) == []  # type: ignore[attr-defined]
    assert user not in pipeline._window_vectors
    assert pipeline.served is None or user not in pipeline.served
    assert pipeline.windows.window(other) == before
    assert pipeline.recommend([user]) == []  # nothing of theirs is left to rank from


def test_a_state_dir_is_rewritten_without_the_users_and_a_restart_does_not_bring_them_back(
        make_settings: Callable[..., Settings], tiny_encoder: HFEncoder, synthetic_log: SyntheticLog,
        tmp_path: Path) -> None:
    pipeline = _pipeline(make_settings, tiny_encoder, synthetic_log)
    pipeline.save(tmp_path)
    held = list(pipeline.windows.users())
    gone, kept = held[:2], held[2:]
    assert forget_in_state_dir(tmp_path, [*gone, gone[0], "nobody"]) == gone
    assert not (tmp_path / (WINDOWS_FILE + ".tmp")).exists()
    restarted = Pipeline(make_settings(encoder={"mode": "incremental"}), tiny_encoder, Catalog(synthetic_log.items))
    restarted.load(tmp_path)
    assert sorted(restarted.windows.users()) == sorted(kept)
    for user in kept:
        assert restarted.windows.window(user) == pipeline.windows.window(user)
    assert forget_in_state_dir(tmp_path, gone) == []


def test_an_unreadable_state_is_a_clear_error_and_is_left_as_it_was(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a state directory"):
        forget_in_state_dir(tmp_path / "missing", ["u1"])
    assert forget_in_state_dir(tmp_path, ["u1"]) == []  # a state without windows
    for content in (b"\x00garbage", msgpack.packb({"version": 999, "users": {"u1": {}}})):
        (tmp_path / WINDOWS_FILE).write_bytes(content)
        with pytest.raises(CheckpointError, match=WINDOWS_FILE):
            forget_in_state_dir(tmp_path, ["u1"])
        assert (tmp_path / WINDOWS_FILE).read_bytes() == content


def test_the_command_line_forgets_users_in_a_state_dir(tmp_path: Path) -> None:
    users = {"u1": {"e": []}, "u2": {"e": []}}
    (tmp_path / WINDOWS_FILE).write_bytes(msgpack.packb({"version": 1, "users": users}))
    result = CliRunner().invoke(app, ["forget", "u1", "u3", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "forgot 1 of 2 users" in result.output
    assert list(msgpack.unpackb((tmp_path / WINDOWS_FILE).read_bytes())["users"]) == ["u2"]
    result = CliRunner().invoke(app, ["forget", "u1", "--state-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "not a state directory" in result.output
