"""Caps hold at a real HTTP server: gates and peak counters, no clock.

A generated suite runs with ``--dynpool-workers 8`` against a threaded HTTP
server on 127.0.0.1. Four jobs, capped 1, 2, 3 and 8, each call their own
endpoint; unmarked tests call a fifth. The server counts requests in flight per
endpoint under one lock and keeps the peaks. Each endpoint is a gate (as in
trio's ``test_threads.py``): a request is held until its endpoint has had
``cap`` requests in flight at once, then the gate stays open for good. So the
peak reaches the cap if and only if the plugin lets ``cap`` items of the job
run at once, and exceeding it means a cap was broken. A request leaves the
count before its answer is sent, so the server's in-flight interval lies inside
the test's. The thirty-second wait of a gate is only a safety net: if it
expires, the peak stays below the cap and the test fails (and every gate opens,
so that the failing run ends soon).

Why the asserted figures are guaranteed, not likely:

- Jobs capped 1, 2 and 3: a closed gate holds at most cap - 1 requests, so gates
  hold at most 0 + 1 + 2 = 3 of the 8 workers. The others keep running items, and
  a work-conserving scheduler keeps dispatching the held jobs (each has at least
  cap items) until their gates open. No clock and no scheduling order involved.
- The job capped 8 needs the whole pool at one moment, which no rule of
  work-conservation forces while other jobs have items waiting (a scheduler may
  always prefer them). So this job is collected first and has the longest
  drain (40 items / 8 > 4 items / 1 > 9 items / 3 = 6 items / 2): the plugin's
  scheduler (longest remaining/cap first, ties by collection order) and any
  first-come scheduler fill the whole pool with it at the start. A scheduler
  that mixed jobs there instead could make all 8 workers wait at closed gates;
  the server detects that by counting (all workers held) and reports it rather
  than waiting for the safety timeouts.
- The pool peak is 8: the cap-8 gate holds 8 requests at once, and 8 is the
  pool size, so anything above it is a broken pool bound.
"""

from __future__ import annotations

import json
import re

import pytest

WORKERS = 8
CAPS = {"cap1": 1, "cap2": 2, "cap3": 3, "cap8": 8}
UNMARKED_TESTS = (
    "test_a_wide.py::test_unmarked_first",
    "test_a_wide.py::test_unmarked_last",
    "test_c_pair.py::test_unmarked_between",
    "test_d_triple.py::test_unmarked_at_the_end",
)

CONFTEST = """
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

WORKERS = 8
CAPS = {"cap1": 1, "cap2": 2, "cap3": 3, "cap8": 8}
GATE_TIMEOUT_SECONDS = 30.0


class Gates:
    def __init__(self):
        self.cond = threading.Condition()
        self.in_flight = dict.fromkeys([*CAPS, "unmarked"], 0)
        self.peak = dict.fromkeys([*CAPS, "unmarked"], 0)
        self.total = 0
        self.total_peak = 0
        self.held = 0
        self.timeouts = []
        self.deadlock = None
        self.unmarked_saw = []

    def _open(self, endpoint):
        # After a deadlock or an expired wait the test has failed: let the run end.
        if self.deadlock is not None or self.timeouts:
            return True
        return self.peak[endpoint] >= CAPS[endpoint]

    def enter(self, endpoint):
        with self.cond:
            self.in_flight[endpoint] += 1
            self.total += 1
            self.peak[endpoint] = max(self.peak[endpoint], self.in_flight[endpoint])
            self.total_peak = max(self.total_peak, self.total)
            self.cond.notify_all()
            if endpoint == "unmarked":
                self.unmarked_saw.append(self.total - 1)
                return
            if self._open(endpoint):
                return
            self.held += 1
            if self.held >= WORKERS:
                # Every worker waits at a closed gate: nothing can ever open one.
                self.deadlock = dict(self.in_flight)
                self.cond.notify_all()
            opened = self.cond.wait_for(lambda: self._open(endpoint), GATE_TIMEOUT_SECONDS)
            self.held -= 1
            if not opened:
                self.timeouts.append(endpoint)
                self.cond.notify_all()

    def leave(self, endpoint):
        with self.cond:
            self.in_flight[endpoint] -= 1
            self.total -= 1


GATES = Gates()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        endpoint = self.path.strip("/")
        if endpoint not in GATES.in_flight:
            self.send_error(404)
            return
        GATES.enter(endpoint)
        # Out of the count before the client can see the answer: otherwise the
        # test could finish and the next one arrive while this one still counts.
        GATES.leave(endpoint)
        body = json.dumps({"endpoint": endpoint}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the request threads
    request_queue_size = 64  # a backlog of 5 drops bursts of connects: 1 s SYN retries


@pytest.fixture(scope="session")
def base_url():
    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def call(base_url):
    def get(endpoint):
        with urllib.request.urlopen(f"{base_url}/{endpoint}", timeout=120) as response:
            assert response.status == 200
            return json.loads(response.read())["endpoint"]

    return get


_running_lock = threading.Lock()
RUNNING = set()
UNMARKED_OVERLAPS = {}


@pytest.fixture(autouse=True)
def overlap_tracker(request):
    # Which tests were in flight while an unmarked test was: it must be none.
    nodeid = request.node.nodeid
    with _running_lock:
        for other in RUNNING:
            if other in UNMARKED_OVERLAPS:
                UNMARKED_OVERLAPS[other].add(nodeid)
        if request.node.get_closest_marker("dynpool") is None:
            UNMARKED_OVERLAPS[nodeid] = set(RUNNING)
        RUNNING.add(nodeid)
    yield
    with _running_lock:
        RUNNING.discard(nodeid)


def pytest_sessionfinish(session):
    observed = {
        "peak": GATES.peak,
        "total_peak": GATES.total_peak,
        "timeouts": GATES.timeouts,
        "deadlock": GATES.deadlock,
        "unmarked_saw_requests": GATES.unmarked_saw,
        "unmarked_overlaps": {k: sorted(v) for k, v in UNMARKED_OVERLAPS.items()},
    }
    (session.config.rootpath / "observed.json").write_text(json.dumps(observed))
"""

# The plugin is already imported by the outer run, so the in-process inner run
# cannot rewrite its asserts; every other warning is an error.
INI = """
[pytest]
filterwarnings =
    error
    ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning
"""

# Collected first and with the longest drain: see the module docstring.
TEST_A_WIDE = """
import pytest


def test_unmarked_first(call):
    assert call("unmarked") == "unmarked"


@pytest.mark.dynpool(max_concurrency=8)
@pytest.mark.parametrize("n", range(40))
def test_wide(call, n):
    assert call("cap8") == "cap8"


def test_unmarked_last(call):
    assert call("unmarked") == "unmarked"
"""

TEST_B_SINGLE = """
import pytest

pytestmark = pytest.mark.dynpool(1)


@pytest.mark.parametrize("n", range(4))
def test_single(call, n):
    assert call("cap1") == "cap1"
"""

TEST_C_PAIR = """
import pytest


@pytest.mark.dynpool(2)
class TestPair:
    @pytest.mark.parametrize("n", range(4))
    def test_pair(self, call, n):
        assert call("cap2") == "cap2"

    def test_pair_again(self, call):
        assert call("cap2") == "cap2"

    def test_pair_once_more(self, call):
        assert call("cap2") == "cap2"


def test_unmarked_between(call):
    assert call("unmarked") == "unmarked"


@pytest.mark.dynpool(3, job="triple")
@pytest.mark.parametrize("n", range(5))
def test_triple_here(call, n):
    assert call("cap3") == "cap3"
"""

TEST_D_TRIPLE = """
import pytest


@pytest.mark.dynpool(3, job="triple")
@pytest.mark.parametrize("n", range(4))
def test_triple_there(call, n):
    assert call("cap3") == "cap3"


def test_unmarked_at_the_end(call):
    assert call("unmarked") == "unmarked"
"""

# job name, cap, items: what the plugin's own summary must show, peak == cap.
JOB_ROWS = (
    ("test_a_wide.py::test_wide", 8, 40),
    ("test_b_single.py", 1, 4),
    ("test_c_pair.py::TestPair", 2, 6),
    ("triple", 3, 9),
)


def test_caps_hold_at_a_threaded_http_server(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_a_wide=TEST_A_WIDE,
        test_b_single=TEST_B_SINGLE,
        test_c_pair=TEST_C_PAIR,
        test_d_triple=TEST_D_TRIPLE,
    )

    # The gates hold a job's requests until its cap is in flight, so they need the pool to
    # fill one job to its cap before spreading: the count order does (most rounds first).
    # The duration order's first run starts one test of each job first, which leaves 8
    # workers spread over gates that need 3 and 8: a deadlock of the gates, not of the pool.
    result = pytester.runpytest("--dynpool-workers", str(WORKERS), "--dynpool-order", "count")

    pooled = sum(items for _, _, items in JOB_ROWS)
    result.assert_outcomes(passed=pooled + len(UNMARKED_TESTS))
    observed = json.loads((pytester.path / "observed.json").read_text())
    assert observed["deadlock"] is None, f"every worker waited at a closed gate: {observed}"
    assert observed["timeouts"] == [], f"a gate's safety wait expired: {observed}"
    assert observed["peak"] == {**CAPS, "unmarked": 1}
    assert observed["total_peak"] == WORKERS
    assert observed["unmarked_saw_requests"] == [0] * len(UNMARKED_TESTS)
    assert observed["unmarked_overlaps"] == {nodeid: [] for nodeid in UNMARKED_TESTS}
    # The plugin's own figures agree with the server's.
    result.stdout.re_match_lines(
        [
            rf"^{re.escape(name)}\s+{cap}\s+{items}\s+{items}\s+0\s+0\s+{cap}\s"
            for name, cap, items in JOB_ROWS
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            f"pool: {WORKERS} workers, peak {WORKERS} in flight, *",
            f"exclusive: {len(UNMARKED_TESTS)} unmarked items ran alone",
        ]
    )
