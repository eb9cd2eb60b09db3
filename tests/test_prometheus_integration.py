"""A real Prometheus server scrapes a running replay (Debian's ``prometheus`` package)."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from streamrec.synthetic import generate, write_events, write_items

PROMETHEUS = shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def query(base: str, promql: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def wait_for(base: str, promql: str, deadline: float) -> float:
    while time.monotonic() < deadline:
        try:
            result = query(base, promql)
        except OSError:
            result = []
        if result and math.isfinite(float(result[0]["value"][1])) and float(result[0]["value"][1]) > 0:  # type: ignore[index]
            return float(result[0]["value"][1])  # type: ignore[index]
        time.sleep(1)
    raise AssertionError(f"Prometheus never returned a positive value for {promql}")


@pytest.mark.slow
def test_prometheus_scrapes_a_running_replay(tiny_model_dir: Path, tmp_path: Path) -> None:
    if PROMETHEUS is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed; .ci/run installs Debian's prometheus package")
        pytest.skip("needs Debian's prometheus package (apt-get install prometheus)")
    log = generate(n_users=200, n_items=80, seed=5)
    events = write_events(log.events, tmp_path / "events.csv")
    items = write_items(log.items, tmp_path / "items.csv")
    app_port, prom_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: streamrec, static_configs: [{{targets: ['127.0.0.1:{app_port}']}}]}}]\n")
    replay = subprocess.Popen(
        [sys.executable, "-m", "streamrec", "replay", str(events), "--catalog", str(items), "--encoder",
         str(tiny_model_dir), "--batch-size", "16", "--no-progress", "--metrics-address",
         f"127.0.0.1:{app_port}", "--linger", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 120
        consumed = wait_for(base, 'sum(streamrec_events_consumed_total{topic="replay"})', deadline)
        assert consumed > 0
        p99 = wait_for(base, 'histogram_quantile(0.99, sum by (le) '
                             '(streamrec_event_to_recommendation_seconds_bucket{stage="consume_time"}))', deadline)
        assert 0 < p99 < 60
        version = wait_for(base, "streamrec_model_version", deadline)
        assert version >= 1
        up = query(base, 'up{job="streamrec"}')
        assert up and up[0]["value"][1] == "1"  # type: ignore[index]
        hit = query(base, "streamrec_online_hit_at_10")
        assert hit and 0 <= float(hit[0]["value"][1]) <= 1  # type: ignore[index]
    finally:
        for process in (replay, prometheus):
            process.terminate()
        for process in (replay, prometheus):
            process.wait(timeout=30)
