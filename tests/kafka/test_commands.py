"""The ``run``, ``produce`` and ``tail`` commands: settings precedence, exit codes, and stopping on signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from kafkakit import REPO, KafkaKit, make_log
from typer.testing import CliRunner

from streamrec.cli import app
from streamrec.kafka.commands import EXIT_CONFIG, EXIT_KAFKA, EXIT_SHUTDOWN_TIMEOUT
from streamrec.synthetic import write_events

runner = CliRunner()

#: A stand-in for KafkaService (only ``stop()`` is called), under real signals in a process of its own.
SIGNALS_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from streamrec.kafka.commands import stop_on_signals

    class Service:
        stops = 0
        def stop(self):
            self.stops += 1

    mode, timeout_s = sys.argv[1], float(sys.argv[2])
    service, before = Service(), signal.getsignal(signal.SIGTERM)
    with stop_on_signals(service, timeout_s):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 60
        while service.stops == 0 and time.monotonic() < deadline:  # the handler runs between bytecodes
            time.sleep(0.01)
        if mode == "twice":
            os.kill(os.getpid(), signal.SIGINT)
        while mode != "once" and time.monotonic() < deadline:  # a stop that never finishes
            time.sleep(0.05)
    print(json.dumps({"stops": service.stops, "restored": signal.getsignal(signal.SIGTERM) is before}))
""").replace("import os,", "import json, os,")


def run_signals(mode: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", SIGNALS_SCRIPT, mode, str(timeout_s)], capture_output=True,
                          text=True, timeout=90, env=env)


def test_a_signal_asks_the_service_to_stop_once_and_the_handlers_come_back() -> None:
    done = run_signals("once", 30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"stops": 1, "restored": True}


def test_a_second_signal_exits_at_once_with_128_plus_its_number() -> None:
    assert run_signals("twice", 30).returncode == 128 + signal.SIGINT


def test_a_stop_that_takes_too_long_exits_with_the_shutdown_timeout_code() -> None:
    done = run_signals("stuck", 0.5)
    assert done.returncode == EXIT_SHUTDOWN_TIMEOUT and "graceful stop took longer than" in done.stderr
    assert done.stdout == ""  # it never got to leave the block


def test_unusable_settings_exit_with_the_config_code(tmp_path: Path) -> None:
    result = runner.invoke(app, ["produce", str(tmp_path / "log.csv"), "--wire-format", "xml"])
    assert result.exit_code == EXIT_CONFIG and "--wire-format 'xml': use msgpack or json" in result.output
    result = runner.invoke(app, ["run", "--batch-size", "0"])
    assert result.exit_code == EXIT_CONFIG and "error:" in result.output and "max_size" in result.output
    result = runner.invoke(app, ["tail", "--config", str(tmp_path / "missing.yaml")])
    # the message is wrapped to the terminal's width, so a long temporary path can split it
    assert result.exit_code == EXIT_CONFIG and "does not exist" in " ".join(result.output.split())
    result = runner.invoke(app, ["produce", str(tmp_path / "missing.csv"), "--bootstrap-servers", "127.0.0.1:1"])
    assert result.exit_code == EXIT_CONFIG and "missing.csv" in result.output


@pytest.mark.kafka
def test_flags_override_the_environment_which_overrides_the_config_file(
        kit: KafkaKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": "127.0.0.1:1",
                                                "input_topic": kit.name("from-yaml")}}))
    monkeypatch.setenv("STREAMREC_KAFKA__BOOTSTRAP_SERVERS", kit.bootstrap)  # the YAML's broker does not exist
    monkeypatch.setenv("STREAMREC_KAFKA__INPUT_TOPIC", kit.name("from-env"))
    log = write_events(make_log(n_users=3, events_per_user=(2, 3)), tmp_path / "events.csv")
    result = runner.invoke(app, ["produce", str(log), "--config", str(config), "--partitions", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    flagged = kit.create_topic("from-flag", 1)
    result = runner.invoke(app, ["produce", str(log), "--config", str(config), "--topic", flagged, "--no-progress"])
    assert result.exit_code == 0, result.output
    produced = sum(1 for _ in log.open()) - 1
    assert len(kit.read_all(kit.name("from-env"))) == len(kit.read_all(flagged)) == produced
    assert kit.name("from-yaml") not in kit.admin.list_topics(timeout=10).topics


@pytest.mark.kafka
def test_tail_of_a_missing_topic_exits_with_the_kafka_code(kit: KafkaKit) -> None:
    result = runner.invoke(app, ["tail", "--topic", kit.name("absent"), "--bootstrap-servers", kit.bootstrap,
                                 "--idle-timeout", "1"])
    assert result.exit_code == EXIT_KAFKA and "does not exist" in result.output


@pytest.mark.kafka
def test_run_without_its_input_topic_exits_with_the_config_code_and_prints_its_stats(kit: KafkaKit) -> None:
    config, settings = kit.write_config(kit.settings(input_topic=kit.name("absent"), group=kit.name("group")))
    result = runner.invoke(app, ["run", "--config", str(config), "--metrics-address", ""])
    assert result.exit_code == EXIT_CONFIG, result.output
    assert f"input topic '{settings.kafka.input_topic}' does not exist" in result.output
    stats = json.loads(result.stderr.strip().splitlines()[-1])["stats"]
    assert stats["events_consumed"] == 0 and stats["batches"] == 0
