"""One embedded HTTP server for the whole session, standing in for the services under test.

``/legacy`` is a fragile old service that takes one request at a time, ``/orders``
takes two and ``/search`` four. Like a real overloaded service, an endpoint
answers 503 when more requests arrive than it can take, so a test that asserts
200 fails if its dynpool cap did not hold. The server also records the peak
number of requests in flight per endpoint: the ``api load`` section of the
terminal summary shows it, and the server fixture fails the run if an endpoint
ever saw more than it can take.

Three more endpoints show the HTTP side of the plugin: ``/inventory`` sits behind
a rate limiter that answers 429 above 2 requests at once (its tests are adaptive
and find that limit; 429s there are expected and retried by the client),
``/reports`` is slow and ``/quotes`` fast. Those tests use the plugin's
``dynpool_client`` / ``dynpool_async_client``, whose base URL is this server
(the ``dynpool_base_url`` fixture below).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


@dataclass(frozen=True)
class Endpoint:
    """What one service of the fake API can take, and how slowly it answers."""

    path: str
    capacity: int
    latency_seconds: float
    # 429 for a rate limiter that adaptive clients may probe; 503 for a service that breaks.
    overload_status: int = 503

    @property
    def probed(self) -> bool:
        return self.overload_status == 429


LEGACY = Endpoint("/legacy", capacity=1, latency_seconds=0.050)
ORDERS = Endpoint("/orders", capacity=2, latency_seconds=0.030)
SEARCH = Endpoint("/search", capacity=4, latency_seconds=0.020)
# Only unmarked tests call it, and those run alone.
HEALTH = Endpoint("/health", capacity=1, latency_seconds=0.0)
INVENTORY = Endpoint("/inventory", capacity=2, latency_seconds=0.030, overload_status=429)
REPORTS = Endpoint("/reports", capacity=3, latency_seconds=0.200)
QUOTES = Endpoint("/quotes", capacity=8, latency_seconds=0.0)
ENDPOINTS = (LEGACY, ORDERS, SEARCH, HEALTH, INVENTORY, REPORTS, QUOTES)
STOCK = {sku: (sku * 7) % 23 for sku in range(1, 17)}

LEGACY_REPORTS = {
    1: "Annual report 2019",
    2: "Annual report 2020",
    3: "Audit 2021",
    4: "Migration plan",
}
BOOKS = (
    "Dune",
    "Dune Messiah",
    "Children of Dune",
    "Foundation",
    "Foundation and Empire",
    "Second Foundation",
    "Hyperion",
    "The Fall of Hyperion",
    "Neuromancer",
    "Solaris",
)
ORDERS_BY_ID = {
    101: {"status": "shipped", "items": ["Dune", "Solaris"], "total_cents": 2498},
    102: {"status": "pending", "items": ["Hyperion"], "total_cents": 1299},
    103: {"status": "cancelled", "items": [], "total_cents": 0},
    104: {"status": "shipped", "items": ["Foundation"], "total_cents": 999},
}


@dataclass
class EndpointLoad:
    """Requests to one endpoint: how many are in flight now, and the most at once."""

    capacity: int
    in_flight: int = 0
    peak: int = 0
    served: int = 0
    rejected: int = 0


class LoadMonitor:
    """Counts requests in flight per endpoint, under a lock (server threads call it)."""

    def __init__(self, endpoints: tuple[Endpoint, ...]) -> None:
        self._lock = threading.Lock()
        self.loads = {endpoint.path: EndpointLoad(endpoint.capacity) for endpoint in endpoints}

    @contextmanager
    def request(self, path: str) -> Iterator[bool]:
        """Count one request while it is served; yields whether it is within capacity."""
        load = self.loads[path]
        with self._lock:
            load.in_flight += 1
            load.peak = max(load.peak, load.in_flight)
            within_capacity = load.in_flight <= load.capacity
            if not within_capacity:
                load.rejected += 1
        try:
            yield within_capacity
        finally:
            with self._lock:
                load.in_flight -= 1
                load.served += 1

    def overloaded(self) -> list[str]:
        """Endpoints that broke: more requests in flight than they can take.

        A rate limiter's 429s are not a break: adaptive clients probe for its limit.
        """
        probed = {endpoint.path for endpoint in ENDPOINTS if endpoint.probed}
        with self._lock:
            return [
                f"{path}: peak {load.peak} in flight, capacity {load.capacity}"
                for path, load in self.loads.items()
                if load.peak > load.capacity and path not in probed
            ]


class ApiServer(HTTPServer):
    """pytest-httpserver's server, quicker to stop.

    ``serve_forever`` polls for shutdown every 0.5 s by default, which the last
    test's teardown would wait for; ``thread_target`` is the documented hook.
    """

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.05)


MONITOR_KEY = pytest.StashKey[LoadMonitor]()
Answer = tuple[int, object]


def _json(status: int, body: object) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _serve(
    monitor: LoadMonitor, endpoint: Endpoint, answer: Callable[[Request], Answer]
) -> Callable[[Request], Response]:
    def handle(request: Request) -> Response:
        with monitor.request(endpoint.path) as within_capacity:
            if not within_capacity:
                status = endpoint.overload_status
                return _json(status, {"error": f"{endpoint.path} is overloaded"})
            time.sleep(endpoint.latency_seconds)
            status, body = answer(request)
            return _json(status, body)

    return handle


def _last_segment_id(request: Request) -> int:
    return int(request.path.rsplit("/", 1)[1])


def _legacy_report(request: Request) -> Answer:
    report_id = _last_segment_id(request)
    title = LEGACY_REPORTS.get(report_id)
    if title is None:
        return 404, {"error": f"no report {report_id}"}
    return 200, {"id": report_id, "title": title, "status": "archived"}


def _search(request: Request) -> Answer:
    query = request.args.get("q", "").strip()
    if not query:
        return 400, {"error": "missing query parameter q"}
    results = [title for title in BOOKS if query.lower() in title.lower()]
    return 200, {"query": query, "count": len(results), "results": results}


def _order(request: Request) -> Answer:
    order_id = _last_segment_id(request)
    order = ORDERS_BY_ID.get(order_id)
    if order is None:
        return 404, {"error": f"no order {order_id}"}
    return 200, {"id": order_id, **order}


def _health(request: Request) -> Answer:
    return 200, {"status": "ok"}


def _inventory(request: Request) -> Answer:
    sku = _last_segment_id(request)
    if sku not in STOCK:
        return 404, {"error": f"no sku {sku}"}
    return 200, {"sku": sku, "in_stock": STOCK[sku]}


def _report(request: Request) -> Answer:
    year = _last_segment_id(request)
    return 200, {"year": year, "pages": year % 100 + 10}


def _quote(request: Request) -> Answer:
    symbol = request.path.rsplit("/", 1)[1]
    return 200, {"symbol": symbol, "price_cents": sum(map(ord, symbol)) * 10}


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too, so that the suite also runs as plain pytest
    # (-p no:dynpool) without unknown-marker warnings, which are errors here.
    config.addinivalue_line(
        "markers", "dynpool(max_concurrency, *, job=None, rate=None, adaptive=False): dynpool job"
    )


@pytest.fixture(scope="session")
def load_monitor(pytestconfig: pytest.Config) -> LoadMonitor:
    """The server's request counters; the terminal summary reads them too."""
    monitor = LoadMonitor(ENDPOINTS)
    pytestconfig.stash[MONITOR_KEY] = monitor
    return monitor


@pytest.fixture(scope="session")
def api_server(load_monitor: LoadMonitor) -> Iterator[ApiServer]:
    """A threaded pytest-httpserver on 127.0.0.1, one for the whole run.

    ``threaded=True`` serves each connection on its own thread; without it the
    server would answer one request at a time and no cap could be observed.
    The plugin's ``httpserver`` fixture is function-scoped and clears its
    handlers before every test, which is why this suite builds its own server.
    """
    werkzeug_logger = logging.getLogger("werkzeug")
    saved_level = werkzeug_logger.level
    werkzeug_logger.setLevel(logging.WARNING)  # not one INFO line per request
    server = ApiServer(host="127.0.0.1", port=0, threaded=True)
    server.no_handler_status_code = 404
    routes = (
        (LEGACY, re.compile(r"^/legacy/reports/\d+$"), _legacy_report),
        (ORDERS, re.compile(r"^/orders/\d+$"), _order),
        (SEARCH, "/search", _search),
        (HEALTH, "/health", _health),
        (INVENTORY, re.compile(r"^/inventory/\d+$"), _inventory),
        (REPORTS, re.compile(r"^/reports/\d+$"), _report),
        (QUOTES, re.compile(r"^/quotes/[A-Z]+$"), _quote),
    )
    for endpoint, uri, answer in routes:
        server.expect_request(uri, method="GET").respond_with_handler(
            _serve(load_monitor, endpoint, answer)
        )
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()
        werkzeug_logger.setLevel(saved_level)
    overloaded = load_monitor.overloaded()
    if overloaded:
        pytest.fail("a dynpool cap did not hold: " + "; ".join(overloaded), pytrace=False)


@pytest.fixture(scope="session")
def dynpool_base_url(api_server: ApiServer) -> str:
    """Point the plugin's dynpool_client fixtures at the embedded server."""
    return api_server.url_for("/")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def api(api_server: ApiServer) -> Iterator[httpx.Client]:
    """One httpx client shared by all tests and threads, closed at the end of the run."""
    with httpx.Client(base_url=api_server.url_for("/"), timeout=10.0) as client:
        yield client


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    monitor = terminalreporter.config.stash.get(MONITOR_KEY, None)
    if monitor is None:
        return
    terminalreporter.write_sep("-", "api load (seen by the server)")
    probed = {endpoint.path for endpoint in ENDPOINTS if endpoint.probed}
    for path, load in monitor.loads.items():
        if load.peak <= load.capacity:
            verdict = "ok"
        elif path in probed:
            verdict = "probed by adaptive clients (429s retried)"
        else:
            verdict = "OVERLOADED"
        terminalreporter.write_line(
            f"{path:<10} capacity {load.capacity}  requests {load.served:>3}  "
            f"peak in flight {load.peak}  rejected {load.rejected}  {verdict}"
        )
