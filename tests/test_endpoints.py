"""The operator endpoints on a free port: /metrics, /healthz and /readyz, answered from live state."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamrec.endpoints import Endpoints, parse_address
from streamrec.errors import ConfigError
from streamrec.metrics import Metrics


def get(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of ``GET path``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


@dataclass
class State:
    """What the service's probes would read: flipped by the tests, counted per /readyz request."""

    ready: bool = False
    alive: bool = True
    readiness_calls: int = 0

    def readiness(self) -> tuple[bool, str]:
        self.readiness_calls += 1
        return self.ready, "ready" if self.ready else "lag 1200 on 3 partitions"

    def liveness(self) -> tuple[bool, str]:
        return self.alive, "ok" if self.alive else "no batch for 90 s"


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
def served(state: State) -> Iterator[tuple[Endpoints, Metrics]]:
    metrics = Metrics()
    endpoints = Endpoints("127.0.0.1:0", metrics, ready=state.readiness, alive=state.liveness).start()
    try:
        yield endpoints, metrics
    finally:
        endpoints.stop()


def test_metrics_serve_the_current_values_as_prometheus_text(served: tuple[Endpoints, Metrics]) -> None:
    endpoints, metrics = served
    metrics.model_version.set(3)
    metrics.bad_messages.labels(reason="schema").inc(2)
    status, content_type, body = get(endpoints.port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    samples = {(s.name, tuple(s.labels.items())): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}
    assert samples[("streamrec_model_version", ())] == 3
    assert samples[("streamrec_bad_messages_total", (("reason", "schema"),))] == 2
    metrics.model_version.set(4)  # every scrape reads the registry anew
    assert "streamrec_model_version 4.0" in get(endpoints.port, "/metrics")[2]


def test_probes_answer_from_their_callbacks_at_each_request(served: tuple[Endpoints, Metrics], state: State) -> None:
    port = served[0].port
    assert get(port, "/readyz") == (503, "text/plain; charset=utf-8", "lag 1200 on 3 partitions\n")
    assert get(port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    state.ready, state.alive = True, False
    assert get(port, "/readyz")[::2] == (200, "ready\n")
    assert get(port, "/healthz")[::2] == (503, "no batch for 90 s\n")
    assert get(port, "/readyz?verbose=1")[0] == 200  # a query string does not change the path
    assert state.readiness_calls == 3


def test_an_unknown_path_is_a_404_that_names_the_endpoints(served: tuple[Endpoints, Metrics]) -> None:
    status, _, body = get(served[0].port, "/metrics/extra")
    assert status == 404 and all(name in body for name in ("/metrics", "/healthz", "/readyz"))


def test_a_busy_port_is_a_config_error_and_stop_frees_it() -> None:
    first = Endpoints("127.0.0.1:0", Metrics(), ready=lambda: (True, "ready")).start()
    port = first.port
    with pytest.raises(ConfigError, match=rf"cannot serve metrics on 127\.0\.0\.1:{port}.*free port"):
        Endpoints(f"127.0.0.1:{port}", Metrics(), ready=lambda: (True, "ready")).start()
    first.stop()
    with socket.socket() as sock:  # nothing listens any more ...
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    again = Endpoints(f"127.0.0.1:{port}", Metrics(), ready=lambda: (True, "ready")).start()  # ... and it binds again
    try:
        assert get(port, "/readyz")[0] == 200
    finally:
        again.stop()
    again.stop()  # stopping twice is harmless


@pytest.mark.parametrize(("address", "expected"), [
    ("127.0.0.1:9108", ("127.0.0.1", 9108)), (":9108", ("127.0.0.1", 9108)),
    ("0.0.0.0:80", ("0.0.0.0", 80)), ("metrics.local:0", ("metrics.local", 0)),
])
def test_addresses_parse_with_loopback_as_the_default_host(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["localhost", "localhost:", "127.0.0.1:http", "127.0.0.1:-1", ""])
def test_an_address_without_a_numeric_port_is_a_config_error(address: str) -> None:
    with pytest.raises(ConfigError, match=r"expected host:port, e\.g\. 127\.0\.0\.1:9108"):
        parse_address(address)
