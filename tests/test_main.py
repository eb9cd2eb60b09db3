"""``python -m streamrec`` (``streamrec/__main__.py``) runs the command line, and starts without torch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_module(*args: str, python_flags: tuple[str, ...] = (), cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, *python_flags, "-m", "streamrec", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def test_help_exits_0_and_lists_every_command() -> None:
    done = run_module("--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: python -m streamrec [OPTIONS] COMMAND" in done.stdout
    for command in ("replay", "demo", "generate", "tiny-model", "run", "produce", "tail"):
        assert re.search(rf"^\W*{command}\s", done.stdout, re.MULTILINE), command


def test_the_command_line_starts_without_torch_or_transformers() -> None:
    done = run_module("--help", python_flags=("-X", "importtime"))
    assert done.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "streamrec.cli" in imported
    assert not {"torch", "transformers"} & imported


def test_a_command_runs_and_its_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    done = run_module("generate", str(tmp_path), "--users", "3", "--items", "4", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "events.csv").is_file() and (tmp_path / "items.csv").read_text().count("\n") == 5
    failed = run_module("generate", str(tmp_path / "x"), "--users", "3", "--items", "4", "--format", "xml")
    assert failed.returncode == 2
    assert "unknown log extension '.xml'" in failed.stdout and "Traceback" not in failed.stdout + failed.stderr
