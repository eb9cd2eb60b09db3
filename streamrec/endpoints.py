"""The operator endpoints: ``/metrics`` (Prometheus), ``/healthz`` (liveness), ``/readyz``.

Served by a small threaded HTTP server in a daemon thread. The default bind address is
127.0.0.1: exposing it further is a deliberate choice (``metrics_address=0.0.0.0:9108``).
Each probe is a callable returning ``(ok, why)``: 200 or 503, with ``why`` as the body.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from streamrec.errors import ConfigError
from streamrec.metrics import Metrics

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, str]]


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"metrics_address {address!r}: expected host:port, e.g. 127.0.0.1:9108")
    return host or "127.0.0.1", int(port)


class Endpoints:
    """>>> endpoints = Endpoints("127.0.0.1:0", Metrics(), ready=lambda: (True, "ready")).start()  # doctest: +SKIP"""

    def __init__(self, address: str, metrics: Metrics, ready: Probe, alive: Probe = lambda: (True, "ok")) -> None:
        self.address = parse_address(address)
        self.metrics = metrics
        self.ready = ready
        self.alive = alive
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def start(self) -> Endpoints:
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, endpoints.metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok, why = endpoints.alive() if path == "/healthz" else endpoints.ready()
                    self._reply(200 if ok else 503, f"{why}\n".encode())
                else:
                    self._reply(404, b"not found: try /metrics, /healthz or /readyz\n")

            def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        try:
            self._server = ThreadingHTTPServer(self.address, Handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {self.address[0]}:{self.address[1]}: {exc}; "
                              "set metrics_address to a free port, or '' to disable") from exc
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="endpoints", daemon=True).start()
        log.info("serving /metrics, /healthz, /readyz on %s:%d", self.address[0], self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
