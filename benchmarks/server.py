"""A local HTTP server with a fixed latency that counts requests in flight per endpoint.

It runs in the benchmark driver, so one lock sees the requests of every test process
alike: the threads of a dynpool run and the 16 processes of an xdist run.

Two gates, for tests that prove caps without timing anything: ``meet`` holds an
endpoint's requests until that many are in flight at once (the proof that a cap
was reached; then the gate stays open), and ``GET /ENDPOINT?hold`` is held until
``let_held_go`` (a test that holds its slot while something happens to it).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
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
    # time.monotonic() of each request's arrival, per endpoint
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    held: int = 0

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

    def __init__(self, latency: float, meet: dict[str, int], gate_seconds: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = latency
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.traffic = Traffic()
        self.meet = meet
        self.met: set[str] = set()
        self.held_may_go = False
        # A gate never holds a request longer: a broken cap fails a count, never hangs.
        self.gate_seconds = gate_seconds

    def pass_gates(self, endpoint: str, in_flight: int, hold: bool) -> None:
        """Under ``changed``: wait for the endpoint's meeting, and a held request's release."""
        target = self.meet.get(endpoint)
        if target is not None and endpoint not in self.met:
            if in_flight >= target:
                self.met.add(endpoint)
                self.changed.notify_all()
            else:
                self.changed.wait_for(lambda: endpoint in self.met, self.gate_seconds)
        if hold:
            self.traffic.held += 1
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.held_may_go, self.gate_seconds)
            self.traffic.held -= 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def handle(self) -> None:
        # A killed client (a test kills a shard on purpose): nothing to answer.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def do_GET(self) -> None:
        endpoint, _, query = self.path.strip("/").partition("?")
        server = self.server
        with server.lock:
            traffic = server.traffic
            now = time.perf_counter()
            traffic.arrivals.setdefault(endpoint, []).append(time.monotonic())
            server.changed.notify_all()
            if traffic.first_start is None:
                traffic.first_start = now
            in_flight = traffic.in_flight.get(endpoint, 0) + 1
            traffic.in_flight[endpoint] = in_flight
            traffic.peaks[endpoint] = max(traffic.peaks.get(endpoint, 0), in_flight)
            traffic.requests[endpoint] = traffic.requests.get(endpoint, 0) + 1
            traffic.total_in_flight += 1
            traffic.peak_total = max(traffic.peak_total, traffic.total_in_flight)
            server.pass_gates(endpoint, in_flight, hold=query == "hold")
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

    def __init__(
        self, latency: float, meet: dict[str, int] | None = None, gate_seconds: float = 60.0
    ) -> None:
        self._server = _Server(latency, dict(meet or {}), gate_seconds)
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

    def wait_until_held(self, count: int, timeout: float) -> bool:
        """True once ``count`` requests are held (``?hold``); False after ``timeout`` s."""
        return self.wait_until(lambda traffic: traffic.held >= count, timeout)

    def wait_until(self, seen: Callable[[Traffic], bool], timeout: float) -> bool:
        """True once ``seen(traffic)`` holds (checked at each arrival); False after ``timeout``."""
        with self._server.changed:
            return self._server.changed.wait_for(lambda: seen(self._server.traffic), timeout)

    def let_held_go(self) -> None:
        """Answer the held requests, and every later ``?hold`` one at once."""
        with self._server.changed:
            self._server.held_may_go = True
            self._server.changed.notify_all()

    def take_traffic(self) -> Traffic:
        """What was seen since the last call, and start counting afresh."""
        with self._server.lock:
            traffic, self._server.traffic = self._server.traffic, Traffic()
        return traffic
