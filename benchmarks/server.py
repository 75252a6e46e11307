"""A local HTTP server with a fixed latency that counts requests in flight per endpoint.

It runs in the benchmark driver, so one lock sees the requests of every test process
alike: the threads of a dynpool run and the 16 processes of an xdist run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass
class Traffic:
    """What the server saw since the last reset."""

    in_flight: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    total_in_flight: int = 0
    peak_total: int = 0
    first_start: float | None = None
    last_end: float | None = None

    @property
    def span(self) -> float:
        """From the first request's arrival to the last one's answer: the I/O phase."""
        if self.first_start is None or self.last_end is None:
            return 0.0
        return self.last_end - self.first_start


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 would make a burst of 16 connects wait for SYN retries.
    request_queue_size = 128

    def __init__(self, latency: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = latency
        self.lock = threading.Lock()
        self.traffic = Traffic()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        endpoint = self.path.strip("/")
        server = self.server
        with server.lock:
            traffic = server.traffic
            now = time.perf_counter()
            if traffic.first_start is None:
                traffic.first_start = now
            in_flight = traffic.in_flight.get(endpoint, 0) + 1
            traffic.in_flight[endpoint] = in_flight
            traffic.peaks[endpoint] = max(traffic.peaks.get(endpoint, 0), in_flight)
            traffic.requests[endpoint] = traffic.requests.get(endpoint, 0) + 1
            traffic.total_in_flight += 1
            traffic.peak_total = max(traffic.peak_total, traffic.total_in_flight)
        time.sleep(server.latency)
        with server.lock:
            # Counted out before the answer leaves: the client's next request cannot overlap.
            traffic.in_flight[endpoint] -= 1
            traffic.total_in_flight -= 1
            traffic.last_end = time.perf_counter()
        body = endpoint.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LatencyServer:
    """Context manager: serves on 127.0.0.1 from a daemon thread; ``port`` to connect."""

    def __init__(self, latency: float) -> None:
        self._server = _Server(latency)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LatencyServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def take_traffic(self) -> Traffic:
        """What was seen since the last call, and start counting afresh."""
        with self._server.lock:
            traffic, self._server.traffic = self._server.traffic, Traffic()
        return traffic
