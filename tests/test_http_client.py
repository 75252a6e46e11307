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


def test_dynpool_job_describes_the_items_job(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_jobinfo="""
        import pytest


        @pytest.mark.dynpool(3, job="search", rate="600/m", adaptive=True)
        def test_marked(dynpool_job):
            assert (dynpool_job.name, dynpool_job.cap, dynpool_job.effective_cap) == (
                "search", 3, 3)
            assert dynpool_job.rate.per_second == 10.0
            assert dynpool_job.adaptive is not None
            assert dynpool_job.stats.requests == 0


        @pytest.mark.dynpool(2)
        def test_default_name(dynpool_job):
            assert (dynpool_job.name, dynpool_job.cap, dynpool_job.rate) == (
                "test_jobinfo.py::test_default_name", 2, None)
            assert dynpool_job.adaptive is None


        def test_unmarked(dynpool_job):
            assert (dynpool_job.name, dynpool_job.cap, dynpool_job.effective_cap) == (
                "unmarked", 1, 1)
        """
    )
    result = pytester.runpytest(
        "--dynpool-workers", "4", "--dynpool-rate", "search=10/s", "--dynpool-rate", "ghost=1/s"
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "search *3, rate 10/s (declared 600/m), adaptive *1 *1 *",
            "warning: --dynpool-cap/dynpool_caps or --dynpool-rate/dynpool_rates name no "
            "selected job: ghost",
        ]
    )
    result.stdout.no_fnmatch_line("*= dynpool http =*")  # no request went through a client


@pytest.mark.parametrize(
    ("args", "env", "ini", "expected"),
    [
        (["--dynpool-base-url", "http://flag"], "http://env", "http://ini", "http://flag"),
        ([], "http://env", "http://ini", "http://env"),
        ([], None, "http://ini", "http://ini"),
        ([], None, None, ""),
    ],
)
def test_base_url_precedence(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str | None,
    ini: str | None,
    expected: str,
) -> None:
    if env is None:
        monkeypatch.delenv("DYNPOOL_BASE_URL", raising=False)
    else:
        monkeypatch.setenv("DYNPOOL_BASE_URL", env)
    if ini is not None:
        pytester.makeini(f"[pytest]\ndynpool_base_url = {ini}\n")
    pytester.makepyfile(
        test_url=f"""
        def test_url(dynpool_base_url, dynpool_client):
            assert dynpool_base_url == {expected!r}
            assert str(dynpool_client.base_url).rstrip("/") == {expected!r}
        """
    )
    pytester.runpytest(*args).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "args",
    [
        ["--dynpool-rate", "search=fast"],
        ["--dynpool-rate", "10/s"],
        ["-o", "dynpool_rates=search=0/s"],
    ],
)
def test_bad_rate_override_is_a_usage_error(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makepyfile(test_x="def test_x():\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dynpool-rate / dynpool_rates: expected JOB=RATE*10/s*"])


def test_same_job_with_two_rates_names_both_places(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_two="""
        import pytest

        @pytest.mark.dynpool(2, job="api", rate="10/s")
        def test_a():
            pass

        @pytest.mark.dynpool(2, job="api")
        def test_b():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            'ERROR: dynpool job "api" is declared with two different caps: max_concurrency=2, '
            "rate='10/s' at test_two.py::test_a and max_concurrency=2 at test_two.py::test_b*"
        ]
    )


def test_fixtures_work_with_the_pool_off(pytester: pytest.Pytester) -> None:
    # -p no:dynpool: the fixtures plugin alone; the marker still sets the request limit.
    pytester.makepyfile(
        test_off="""
        import pytest

        pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")

        @pytest.mark.dynpool(3, job="api", rate="5/s")
        def test_marked(dynpool_job, dynpool_client):
            assert (dynpool_job.name, dynpool_job.effective_cap) == ("api", 3)
            assert dynpool_job.requests.capacity == 3

        def test_unmarked(dynpool_job):
            assert (dynpool_job.name, dynpool_job.cap) == ("unmarked", 1)
        """
    )
    result = pytester.runpytest("-p", "no:dynpool", "-p", "pytest_dynpool.fixtures")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*= dynpool =*")


def test_a_rated_job_runs_every_test(pytester: pytest.Pytester) -> None:
    # Test starts wait for tokens on the workers' condition (never a busy loop);
    # how fast that goes is measured in benchmarks/rate.py, not here.
    pytester.makepyfile(
        test_rated="""
        import pytest

        @pytest.mark.dynpool(2, job="rated", rate="200/s")
        @pytest.mark.parametrize("n", range(8))
        def test_rated(n):
            pass

        @pytest.mark.dynpool(3)
        @pytest.mark.parametrize("n", range(4))
        def test_free(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["rated *2, rate 200/s *8 *8 *0 *0 *"])


def test_the_scheduler_follows_an_adaptive_jobs_effective_cap(pytester: pytest.Pytester) -> None:
    # test_shrink drives the job's effective cap from 4 to 1 (as three 429
    # episodes would) while the other items that started with it wait at a gate.
    # Every item dispatched afterwards must then run alone in the job: each waits
    # briefly for company, which a scheduler still using cap 4 would give it.
    pytester.makepyfile(
        test_adaptive="""
        import threading

        import pytest

        pytestmark = pytest.mark.dynpool(4, job="api", adaptive=True)
        SHRUNK = threading.Event()
        LOCK = threading.Lock()
        RUNNING = set()
        COMPANY = threading.Event()
        SEEN_WITH_COMPANY = []


        def test_shrink(dynpool_job):
            for _ in range(2):
                dynpool_job.record(429, 0.0, dynpool_job.generation)
            assert dynpool_job.effective_cap == 1
            SHRUNK.set()


        @pytest.mark.parametrize("n", range(3))
        def test_started_before(n):
            assert SHRUNK.wait(30)


        @pytest.mark.parametrize("n", range(4))
        def test_after(n):
            with LOCK:
                if RUNNING:
                    SEEN_WITH_COMPANY.append(n)
                    COMPANY.set()
                RUNNING.add(n)
            COMPANY.wait(0.1)
            with LOCK:
                RUNNING.discard(n)
            assert SEEN_WITH_COMPANY == []
        """
    )
    result = pytester.runpytest("--dynpool-workers", "8")
    result.assert_outcomes(passed=8)


def test_a_cap_lowered_before_the_pool_starts_holds_in_the_pool(
    pytester: pytest.Pytester,
) -> None:
    # test_shrink is unmarked, so it runs alone before the pool; it lowers the
    # "api" job's effective cap, which must then hold for the job's pooled tests.
    pytester.makepyfile(
        test_early="""
        import threading

        import pytest

        from pytest_dynpool.fixtures import REGISTRY_KEY
        from pytest_dynpool.jobs import ITEM_JOB_KEY

        LOCK = threading.Lock()
        RUNNING = set()
        COMPANY = threading.Event()
        SEEN_WITH_COMPANY = []


        def test_shrink(request):
            pooled = next(i for i in request.session.items if i.name.startswith("test_after"))
            state = request.config.stash[REGISTRY_KEY].state(pooled.stash[ITEM_JOB_KEY])
            for _ in range(2):
                state.record(503, 0.0, state.generation)
            assert (state.name, state.effective_cap) == ("api", 1)


        @pytest.mark.dynpool(4, job="api", adaptive=True)
        @pytest.mark.parametrize("n", range(4))
        def test_after(n):
            with LOCK:
                if RUNNING:
                    SEEN_WITH_COMPANY.append(n)
                    COMPANY.set()
                RUNNING.add(n)
            COMPANY.wait(0.1)
            with LOCK:
                RUNNING.discard(n)
            assert SEEN_WITH_COMPANY == []
        """
    )
    result = pytester.runpytest("--dynpool-workers", "8")
    result.assert_outcomes(passed=5)


def test_loading_the_plugin_warns_nothing(pytester: pytest.Pytester) -> None:
    # A fresh interpreter: in-process runs always see the plugin already imported.
    pytester.makepyfile(
        test_quiet="""
        import pytest

        @pytest.mark.dynpool(2)
        def test_job(dynpool_job):
            assert dynpool_job.cap == 2
        """
    )
    result = pytester.runpytest_subprocess("-W", "error", "--dynpool-workers", "2")
    result.assert_outcomes(passed=1)
    result.stderr.no_fnmatch_line("*Warning*")
