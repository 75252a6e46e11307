"""The HTTP fixtures against a fragile local endpoint: gates and peak counters, no clock.

The inner runs talk to a threaded pytest-httpserver whose ``/fragile`` endpoint
answers 429 when it has more than 2 requests in flight, like a small service
with a rate limiter in front. Requests within capacity are held at a gate until
``OPEN_AT`` requests were in flight at once (then it stays open for good), so a
peak is reached if and only if the client lets that many through together. A
request leaves the count before its answer is sent. The gate's 30-second wait is
a safety net only: if it expires the peak stays short and the test fails.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

CONFTEST = """
import json
import logging
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

CAPACITY = 2
OPEN_AT = {open_at}


class Fragile:
    def __init__(self):
        self.cond = threading.Condition()
        self.in_flight = 0
        self.peak = 0
        self.answers = {{}}
        self.timeouts = 0
        self.opened = False
        self.extra = None

    def hold_until(self, condition):
        self.extra = condition

    def _open(self):
        if self.opened or self.peak > CAPACITY:
            return True
        self.opened = self.peak >= OPEN_AT and (self.extra is None or self.extra())
        return self.opened

    def handle(self, request):
        with self.cond:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.cond.notify_all()
            if self.in_flight > CAPACITY:
                status = 429
            else:
                status = 200
                deadline = time.monotonic() + 30
                while not self._open() and time.monotonic() < deadline:
                    self.cond.wait(0.01)  # extra() watches the client: poll it
                if not self._open():
                    self.timeouts += 1
            self.answers[status] = self.answers.get(status, 0) + 1
            self.in_flight -= 1
        return Response(json.dumps({{"ok": status == 200}}), status=status,
                        content_type="application/json")


FRAGILE = Fragile()


@pytest.fixture
def fragile():
    return FRAGILE


class Server(HTTPServer):
    def thread_target(self):
        self.server.serve_forever(poll_interval=0.05)


@pytest.fixture(scope="session")
def dynpool_base_url():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = Server(host="127.0.0.1", port=0, threaded=True)
    server.expect_request("/fragile").respond_with_handler(FRAGILE.handle)
    server.start()
    yield server.url_for("/")
    server.clear()
    server.stop()


@pytest.fixture
def anyio_backend():
    return "asyncio"


def pytest_sessionfinish(session):
    observed = {{
        "peak": FRAGILE.peak,
        "answers": FRAGILE.answers,
        "timeouts": FRAGILE.timeouts,
    }}
    (session.config.rootpath / "observed.json").write_text(json.dumps(observed))
"""

INI = """
[pytest]
filterwarnings =
    error
    ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning
"""


def run_against_fragile(
    pytester: pytest.Pytester, open_at: int, tests: str, *args: str
) -> tuple[pytest.RunResult, dict[str, Any]]:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST.format(open_at=open_at))
    pytester.makepyfile(test_fragile=tests)
    result = pytester.runpytest("--dynpool-workers", "8", *args)
    observed = json.loads((pytester.path / "observed.json").read_text())
    return result, observed


def http_row(result: pytest.RunResult, job: str) -> dict[str, str]:
    """The job's row of the ``dynpool http`` section, by column name."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "= dynpool http =" in line)
    header = re.split(r"\s{2,}", lines[start + 1].strip())
    for line in lines[start + 2 :]:
        if line.startswith(job + " "):
            cells = re.split(r"\s{2,}", line.strip())
            return dict(zip(header, cells, strict=True))
    raise AssertionError(f"no row for {job} in:\n" + "\n".join(lines[start:]))


ONE_REQUEST_PER_TEST = """
import pytest


@pytest.mark.dynpool({marker})
@pytest.mark.parametrize("n", range(12))
def test_call(dynpool_client, n):
    response = dynpool_client.get("/fragile")
    assert response.status_code == 200
"""


def test_cap_two_never_provokes_a_429(pytester: pytest.Pytester) -> None:
    result, observed = run_against_fragile(
        pytester, 2, ONE_REQUEST_PER_TEST.format(marker='2, job="fragile"')
    )
    result.assert_outcomes(passed=12)
    assert observed == {"peak": 2, "answers": {"200": 12}, "timeouts": 0}
    row = http_row(result, "fragile")
    assert (row["requests"], row["2xx"], row["429/503"], row["retries"]) == ("12", "12", "0", "0")
    assert row["cap"] == "2"


def test_adaptive_cap_eight_backs_off_and_passes_every_test(pytester: pytest.Pytester) -> None:
    # The gate opens at 3 in flight: with 8 tests started at once, at least one
    # request is answered 429 before any succeeds.
    result, observed = run_against_fragile(
        pytester, 3, ONE_REQUEST_PER_TEST.format(marker='8, job="fragile", adaptive=True')
    )
    result.assert_outcomes(passed=12)
    assert observed["timeouts"] == 0
    assert observed["peak"] >= 3
    throttled = observed["answers"]["429"]
    assert throttled >= 1
    assert observed["answers"]["200"] == 12  # each test saw one final 200
    row = http_row(result, "fragile")
    assert int(row["requests"]) == 12 + throttled
    assert int(row["429/503"]) == throttled
    assert int(row["retries"]) == throttled  # every 429 was retried
    cap = re.fullmatch(r"(\d+) \(min (\d+), max (\d+)\)", row["cap"])
    assert cap is not None, row
    end, minimum, maximum = cap.groups()
    assert int(minimum) <= 4  # halved at least once
    assert int(minimum) <= int(end) <= int(maximum) == 8
    result.stdout.fnmatch_lines(["fragile *8, adaptive *12 *12 *"])


def test_parallel_requests_of_one_test_stay_within_the_cap(pytester: pytest.Pytester) -> None:
    tests = """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import pytest


    @pytest.mark.dynpool(2, job="fragile")
    def test_five_at_once(dynpool_client, dynpool_job, fragile):
        assert threading.current_thread().name.startswith("dynpool-worker-")
        # The first two are held at the server until the other three wait at the client.
        fragile.hold_until(lambda: dynpool_job.requests.waiting == 3)
        with ThreadPoolExecutor(5) as threads:
            statuses = list(threads.map(lambda _: dynpool_client.get("/fragile").status_code,
                                        range(5)))
        assert statuses == [200] * 5
        assert dynpool_job.requests.peak == 2
    """
    result, observed = run_against_fragile(pytester, 2, tests)
    result.assert_outcomes(passed=1)
    assert observed == {"peak": 2, "answers": {"200": 5}, "timeouts": 0}


ASYNC_TESTS = """
import asyncio
import threading

import pytest


@pytest.mark.anyio
@pytest.mark.dynpool(2, job="fragile")
async def test_five_tasks_at_once(dynpool_async_client, dynpool_job, fragile):
    assert threading.current_thread().name.startswith("dynpool-worker-")
    fragile.hold_until(lambda: dynpool_job.requests.waiting >= 3)
    responses = await asyncio.gather(
        *(dynpool_async_client.get("/fragile") for _ in range(5))
    )
    assert [response.status_code for response in responses] == [200] * 5


@pytest.mark.anyio
@pytest.mark.dynpool(2, job="fragile")
@pytest.mark.parametrize("n", range(6))
async def test_one_each(dynpool_async_client, dynpool_job, n):
    assert threading.current_thread().name.startswith("dynpool-worker-")
    response = await dynpool_async_client.get("/fragile")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert dynpool_job.name == "fragile"
"""


def test_async_tests_share_the_job_limit_on_worker_threads(pytester: pytest.Pytester) -> None:
    # Seven async tests on worker threads, each in its own event loop, one cap of 2
    # for all their requests: the gate at 2 proves two went through together.
    result, observed = run_against_fragile(pytester, 2, ASYNC_TESTS)
    result.assert_outcomes(passed=7)
    assert observed == {"peak": 2, "answers": {"200": 11}, "timeouts": 0}
    row = http_row(result, "fragile")
    assert (row["requests"], row["2xx"], row["429/503"]) == ("11", "11", "0")
