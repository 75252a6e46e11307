"""A local HTTP server that counts requests in flight per endpoint, with gates.

It runs in the outer test process and counts the requests of every pytest process
alike. A request to an endpoint with a cap in ``caps`` is held until the endpoint
has had that many requests in flight at once; then its gate stays open for good.
So a peak reaches its cap only if that many ran at once, and a peak above it is a
broken cap. A gate's 30 s wait is a safety net only: the peak then stays short.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

GATE_TIMEOUT_SECONDS = 30.0


class GatedCounter:
    """Requests in flight per endpoint, peaks, and a gate per capped endpoint."""

    def __init__(self) -> None:
        self.caps: dict[str, int] = {}  # endpoint -> the in-flight count that opens its gate
        self.cond = threading.Condition()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.total = 0
        self.total_peak = 0
        self.timeouts: list[str] = []
        # endpoint -> the status it answers once (then 200): a retry then succeeds.
        self.statuses: dict[str, int] = {}

    def _open(self, endpoint: str) -> bool:
        cap = self.caps.get(endpoint)
        return cap is None or bool(self.timeouts) or self.peak[endpoint] >= cap

    def enter(self, endpoint: str) -> None:
        with self.cond:
            self.in_flight[endpoint] += 1
            self.total += 1
            self.peak[endpoint] = max(self.peak[endpoint], self.in_flight[endpoint])
            self.total_peak = max(self.total_peak, self.total)
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: self._open(endpoint), GATE_TIMEOUT_SECONDS):
                self.timeouts.append(endpoint)
                self.cond.notify_all()

    def leave(self, endpoint: str) -> None:
        with self.cond:
            self.in_flight[endpoint] -= 1
            self.total -= 1


def _handler(counter: GatedCounter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            endpoint = self.path.strip("/")
            counter.enter(endpoint)
            counter.leave(endpoint)  # before the answer: the next test cannot overlap it
            self.send_response(counter.statuses.pop(endpoint, 200))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def gated_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedCounter]:
    """A server on 127.0.0.1 for the duration; its URL in ``$GATED_URL`` for subprocesses."""
    counter = GatedCounter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(counter))
    httpd.daemon_threads = True
    httpd.request_queue_size = 64
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    monkeypatch.setenv("GATED_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        yield counter
    finally:
        with counter.cond:
            counter.timeouts.append("teardown")  # open every gate
            counter.cond.notify_all()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
