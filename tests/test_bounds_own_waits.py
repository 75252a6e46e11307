"""Issue 14, an honest lower bound: time a test was blocked on its own job's limits is not work.

The HTTP plugin notes, per running test, the wall time during which every one of
its requests in progress waited on the job's limits (a request slot, a rate
token, a Retry-After pause, an adaptive back-off) and at least one did; the pool
core subtracts it from the test's time in flight before it bounds the run.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import pytest

from pytest_dynpool.http import traffic as traffic_module
from pytest_dynpool.http.exchange import Release
from pytest_dynpool.http.traffic import CURRENT_HOLDER, HeldSlots, JobTraffic
from pytest_dynpool.http.transport import AsyncLimitedTransport, LimitedTransport
from pytest_dynpool.model import Job

from .test_http_core import FakeTime, _answers, _job


@pytest.fixture
def time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """One fake clock for the transports and for the holder's measure of its waits."""
    fake = FakeTime()
    monkeypatch.setattr(traffic_module, "clock", SimpleNamespace(perf_counter=fake))
    return fake


def test_a_wait_counts_while_it_is_the_tests_only_request(time: FakeTime) -> None:
    holder = HeldSlots()
    holder.request_started()
    holder.wait_started()
    time.now += 2.0  # waiting for a slot
    holder.wait_ended()
    time.now += 1.0  # at the server: the test is not blocked on its job
    holder.request_ended()
    assert holder.blocked_seconds() == 2.0


def test_concurrent_waits_of_one_test_count_once(time: FakeTime) -> None:
    holder = HeldSlots()
    for _ in range(4):  # four requests of one test, on four threads, all waiting
        holder.request_started()
        holder.wait_started()
    time.now += 1.0
    for _ in range(4):
        holder.wait_ended()
        holder.request_ended()
    assert holder.blocked_seconds() == 1.0  # not 4.0


def test_a_wait_while_another_request_of_the_test_is_served_does_not_count(
    time: FakeTime,
) -> None:
    holder = HeldSlots()
    holder.request_started()  # served: at the server for 3 s
    holder.request_started()
    holder.wait_started()  # meanwhile waits for a slot
    time.now += 3.0
    holder.request_ended()  # the first one answered: from now on the test is blocked
    time.now += 0.5
    holder.wait_ended()
    holder.request_ended()
    assert holder.blocked_seconds() == 0.5


def _scripted_get(holder: HeldSlots, time: FakeTime) -> JobTraffic:
    """One GET through the sync transport, as ``holder``'s test, against the scripted
    answers (429, 503, 429, then 200 "done"); the job's traffic."""
    token = CURRENT_HOLDER.set(holder)
    try:
        traffic = JobTraffic(_job(), clock=time)
        transport = LimitedTransport(traffic, _answers(), sleep=time.sleep, clock=time)
        with httpx.Client(transport=transport) as client:
            assert client.get("http://api/x").content == b"done"
    finally:
        CURRENT_HOLDER.reset(token)
    return traffic


def test_each_answered_request_is_a_use_of_its_jobs_slot(time: FakeTime) -> None:
    # Retries included: each attempt held a slot while the server answered it.
    holder = HeldSlots()
    traffic = _scripted_get(holder, time)
    served = holder.served_seconds()
    assert list(served) == [traffic.name]
    assert len(served[traffic.name]) == traffic.stats.requests == 4
    assert served[traffic.name] == traffic.stats.latencies


def test_a_response_that_still_holds_its_slot_keeps_the_test_busy(time: FakeTime) -> None:
    traffic = JobTraffic(Job("api", 2, 2, "test"))
    holder = HeldSlots()
    token = CURRENT_HOLDER.set(holder)
    try:
        traffic.requests.acquire()
        streamed = Release(traffic)  # a streamed body the test still reads
        streamed.keep_request_open()
        holder.request_started()
        holder.wait_started()
        time.now += 2.0
        streamed()  # body read and closed: only the waiting request is left
        time.now += 1.0
        holder.wait_ended()
        holder.request_ended()
    finally:
        CURRENT_HOLDER.reset(token)
    assert holder.blocked_seconds() == 1.0


def test_every_limit_wait_of_the_core_counts_in_both_transports(time: FakeTime) -> None:
    # The scripted answers back off 0.05 s, wait out a Retry-After of 2 s, back off 0.2 s.
    sync_holder = HeldSlots()
    _scripted_get(sync_holder, time)
    assert time.sleeps == pytest.approx([0.05, 2.0, 0.2])
    assert sync_holder.blocked_seconds() == pytest.approx(2.25)

    async_holder = HeldSlots()

    async def main() -> bytes:
        CURRENT_HOLDER.set(async_holder)  # this task's context only
        async_traffic = JobTraffic(_job(), clock=time)

        async def sleep(seconds: float) -> None:
            time.sleep(seconds)

        transport = AsyncLimitedTransport(async_traffic, _answers(), clock=time, sleep=sleep)
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get("http://api/x")).content

    assert asyncio.run(main()) == b"done"
    assert async_holder.blocked_seconds() == pytest.approx(2.25)


def test_a_task_cancelled_in_its_wait_leaves_the_test_unblocked(time: FakeTime) -> None:
    traffic = JobTraffic(Job("api", 1, 1, "test"))
    traffic.requests.acquire()  # someone else holds the only slot
    holder = HeldSlots()

    async def main() -> None:
        CURRENT_HOLDER.set(holder)
        transport = AsyncLimitedTransport(
            traffic, httpx.MockTransport(lambda r: httpx.Response(200))
        )
        async with httpx.AsyncClient(transport=transport) as client:
            task = asyncio.ensure_future(client.get("http://api/x"))
            while traffic.requests.waiting == 0:
                await asyncio.sleep(0)
            time.now += 1.0
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    time.now += 5.0  # no request in progress: nothing more counts
    assert holder.blocked_seconds() == 1.0


# Three tests of a cap-3 job each make one request while something else holds all
# three of the job's request slots; it lets them go only once all three wait, and a
# known stretch later. Each test was blocked at least that stretch, so its work is at
# most its time in flight less the stretch; the bound's term must be no more than the
# largest term of that work (the session's teardown then follows it). Before, the bound
# was at least the longest time in flight, so this failed (the longest test's time in
# flight contains the whole stretch).
CONFTEST = """
import json

import pytest


@pytest.fixture(scope="session")
def dynpool_base_url(make_httpserver):
    make_httpserver.expect_request("/data").respond_with_data("x" * 100)
    return make_httpserver.url_for("/")


def pytest_dynpool_run_finished(config, stats):
    bound = stats.bound()
    figures = {
        "bound": bound.seconds,
        "term": bound.term,
        "then": bound.then,
        "in_flight": [[node_id, s] for job in stats.jobs for node_id, s in job.timings],
        "teardowns": stats.session_teardowns,
        "workers": stats.workers,
    }
    (config.rootpath / "figures.json").write_text(json.dumps(figures))
"""

SUITE = """
import contextvars
import json
import threading
import time

import pytest

pytestmark = pytest.mark.dynpool(3, job="api")
LOCK = threading.Lock()
HELD = threading.Event()
STARTED = []
HOLD_SECONDS = 0.3  # how long the slots stay held once all three tests wait


def hold_every_slot(client, job):
    # A thread of no test: the slots it holds are the job's, held by none of the three.
    streams = [client.stream("GET", "/data") for _ in range(job.cap)]
    for stream in streams:
        stream.__enter__()
    HELD.set()
    give_up = time.monotonic() + 30  # a safety net only: the known wait is then wrong
    while job.requests.waiting < 3 and time.monotonic() < give_up:
        time.sleep(0.001)  # each test's one request waits for a slot
    observed = time.perf_counter()
    time.sleep(HOLD_SECONDS)
    released = time.perf_counter()
    for stream in streams:
        stream.__exit__(None, None, None)
    with open("known_wait.json", "w") as out:
        json.dump(released - observed, out)


def wait_for_the_slots(client, job):
    with LOCK:
        if not STARTED:
            STARTED.append(threading.Thread(target=hold_every_slot, args=(client, job)))
            # In a fresh context: the pool runs a thread in its starter's context, and a
            # test whose thread is served is not blocked (it works).
            contextvars.Context().run(STARTED[0].start)
    assert HELD.wait(30)
    assert client.get("/data").status_code == 200


@pytest.mark.parametrize("n", range(3))
def test_request(dynpool_client, dynpool_job, n):
    wait_for_the_slots(dynpool_client, dynpool_job)
"""


def test_the_bound_does_not_count_a_tests_wait_for_its_jobs_slots(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_waits=SUITE)
    result = pytester.runpytest(
        "-p", "no:randomly", "-p", "no:cacheprovider", "--dynpool-workers", "3"
    )
    result.assert_outcomes(passed=3)
    figures = json.loads((pytester.path / "figures.json").read_text())
    known = json.loads((pytester.path / "known_wait.json").read_text())
    # The last test also tore the session down (pytest-httpserver's server stops within
    # its 0.5 s poll): the bound adds that after its term, out of that test's time.
    teardown = dict(figures["teardowns"])
    assert figures["then"] == min(teardown.values(), default=0.0)
    in_flight = [seconds - teardown.get(node_id, 0.0) for node_id, seconds in figures["in_flight"]]
    assert len(in_flight) == 3
    assert known > 0
    # Every test was in flight across the whole stretch, so each is at least that long.
    assert min(in_flight) >= known
    most_work = [seconds - known for seconds in in_flight]
    upper = max(sum(most_work) / min(3, figures["workers"]), max(most_work))
    term = figures["bound"] - figures["then"]
    assert term <= upper + 1e-9
    assert term < max(in_flight)  # what the old bound could never be


# Each answered request of a pooled test is a use of one of its job's cap slots; the
# job's uses reach the bound. One test of a cap-2 job sends four requests at once on
# four threads: they pass two at a time, so the job needed at least its two shortest
# requests one after the other, though that test is the job's only item.
SLOTS_CONFTEST = """
import json

import pytest


@pytest.fixture(scope="session")
def dynpool_base_url(make_httpserver):
    make_httpserver.expect_request("/data").respond_with_data("x")
    return make_httpserver.url_for("/")


def pytest_dynpool_run_finished(config, stats):
    bound = stats.bound()
    (job,) = [job for job in stats.jobs if job.job.name == "api"]
    figures = {"bound": bound.seconds, "uses": job.slot_uses, "slots": job.work(8).slots}
    (config.rootpath / "figures.json").write_text(json.dumps(figures))
"""

SLOTS_SUITE = """
from concurrent.futures import ThreadPoolExecutor

import pytest


@pytest.mark.dynpool(2, job="api")
def test_four_at_once(dynpool_client):
    with ThreadPoolExecutor(4) as threads:
        answers = list(threads.map(lambda _: dynpool_client.get("/data"), range(4)))
    assert [answer.status_code for answer in answers] == [200] * 4
"""


def test_a_jobs_requests_reach_the_bound_as_uses_of_its_slots(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SLOTS_CONFTEST)
    pytester.makepyfile(test_slots=SLOTS_SUITE)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    figures = json.loads((pytester.path / "figures.json").read_text())
    uses: list[float] = figures["uses"]
    assert len(uses) == 4
    assert min(uses) > 0
    assert figures["slots"] == 2
    assert figures["bound"] >= sum(sorted(uses)[:2]) - 1e-9


# The session's teardown runs in the pooled phase's last item, after every other item:
# the pool measures it there, and the bound adds it after its largest term.
TEARDOWN_CONFTEST = """
import json
import time

import pytest


@pytest.fixture(scope="session")
def server(pytestconfig):
    yield
    started = time.perf_counter()
    time.sleep(0.05)  # a server that takes a moment to stop
    measured = time.perf_counter() - started
    (pytestconfig.rootpath / "own_measure.json").write_text(json.dumps(measured))


def pytest_dynpool_run_finished(config, stats):
    bound = stats.bound()
    figures = {"teardowns": stats.session_teardowns, "bound": bound.seconds, "then": bound.then}
    (config.rootpath / "figures.json").write_text(json.dumps(figures))
"""

TEARDOWN_SUITE = """
import pytest

pytestmark = pytest.mark.dynpool(2, job="api")


@pytest.mark.parametrize("n", range(3))
def test_uses_the_server(server, n):
    pass
"""


def test_the_sessions_teardown_in_the_last_item_follows_the_bound(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(TEARDOWN_CONFTEST)
    pytester.makepyfile(test_teardown=TEARDOWN_SUITE)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    figures = json.loads((pytester.path / "figures.json").read_text())
    own_measure = json.loads((pytester.path / "own_measure.json").read_text())
    ((node_id, seconds),) = figures["teardowns"]
    assert node_id in {f"test_teardown.py::test_uses_the_server[{n}]" for n in range(3)}
    assert seconds >= own_measure > 0
    assert figures["then"] == seconds
    assert figures["bound"] >= seconds
