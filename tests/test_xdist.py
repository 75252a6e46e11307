"""Under ``pytest -n 2``: dynpool runs on every xdist worker and caps hold across workers.

Caps are proven at a real HTTP server that runs in this (the outer) test process and
counts requests in flight per endpoint across the worker processes, with gates: a
request to an endpoint is held until the endpoint has had ``cap`` requests in flight
at once, then the gate stays open for good. So a peak reaches its cap only if cap
items of the job ran at once across the workers, and a peak above it is a broken cap.
Gate waits end after 30 s as a safety net only (the peak then stays short of the cap
and the test fails). No clock is asserted.

Why the figures are guaranteed with ``-n 2 --dynpool-workers 4`` (8 threads):
the job capped 8 is split 4 + 4 and has the longest drain on each worker (28 items /
4), so each worker fills its 4 threads with it at once: 8 in flight, which opens its
gate. Closed gates of the jobs capped 1, 2 and 3 hold at most 0 + 1 + 2 = 3 threads,
so each worker keeps a free thread and, being work-conserving, starts its share of a
held job (each worker has at least its share of items of each job), which opens it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dynpool.pytest_compat import check_xdist_version
from pytest_dynpool.xdist_partition import JobItems, partition, split_cap

pytest.importorskip("xdist")

CAPS = {"cap8": 8, "cap1": 1, "cap2": 2, "cap3": 3}
ITEMS = {"cap8": 56, "cap1": 4, "cap2": 6, "cap3": 9}
GATE_TIMEOUT_SECONDS = 30.0


class GatedCounter:
    """Requests in flight per endpoint, peaks, and a gate per capped endpoint."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.total = 0
        self.total_peak = 0
        self.timeouts: list[str] = []

    def _open(self, endpoint: str) -> bool:
        cap = CAPS.get(endpoint)
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
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedCounter]:
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


CAPPED_SUITE = """
import os
import urllib.request

import pytest


def call(endpoint):
    with urllib.request.urlopen(os.environ["GATED_URL"] + "/" + endpoint, timeout=120) as r:
        assert r.status == 200

# Collected first: ties go to it (see the outer test's docstring).
@pytest.mark.dynpool(8, job="cap8")
@pytest.mark.parametrize("n", range(56))
def test_cap8(n):
    call("cap8")

@pytest.mark.dynpool(1, job="cap1")
@pytest.mark.parametrize("n", range(4))
def test_cap1(n):
    call("cap1")

@pytest.mark.dynpool(2, job="cap2")
@pytest.mark.parametrize("n", range(6))
def test_cap2(n):
    call("cap2")

@pytest.mark.dynpool(3, job="cap3")
@pytest.mark.parametrize("n", range(9))
def test_cap3(n):
    call("cap3")

@pytest.mark.parametrize("n", range(3))
def test_unmarked(n):
    call("unmarked")
"""


def _junit_ids(path: str) -> Counter[str]:
    cases = ET.parse(path).getroot().iter("testcase")
    return Counter(f"{case.get('classname')}::{case.get('name')}" for case in cases)


def test_caps_hold_across_two_workers_and_every_test_is_reported_once(
    pytester: pytest.Pytester, server: GatedCounter
) -> None:
    pytester.makepyfile(test_capped=CAPPED_SUITE)
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dynpool-workers",
        "4",
        "-rA",
        "--junitxml=junit.xml",
        "-p",
        "no:randomly",
        timeout=300,
    )
    total = sum(ITEMS.values()) + 3
    result.assert_outcomes(passed=total)
    assert server.timeouts == []
    assert {name: server.peak[name] for name in CAPS} == CAPS
    assert server.total_peak == 8  # 2 processes x 4 threads, and never more
    assert server.peak["unmarked"] <= 2  # one at a time per worker, as under xdist
    # Exactly once in the terminal's short summary and in junitxml.
    passed = Counter(line.split()[1] for line in result.outlines if line.startswith("PASSED "))
    assert len(passed) == total
    assert set(passed.values()) == {1}
    junit = _junit_ids(str(pytester.path / "junit.xml"))
    assert len(junit) == total
    assert set(junit.values()) == {1}
    # One summary for the whole run, gathered from both workers.
    result.stdout.fnmatch_lines(
        [
            "*= dynpool =*",
            "cap8 * 8 * 56 * 56 * 0 * 0 * 8 *",
            "cap3 * 3 * 9 * 9 *",
            "pool: 8 workers*",
            "exclusive: 3 unmarked items ran alone",
            "xdist: 2 workers, pooled wall per worker: gw0 *, gw1 *",
        ]
    )


DIFFERENTIAL_SUITE = """
import pytest

@pytest.fixture(scope="module")
def resource():
    yield {"ready": True}

@pytest.fixture
def broken():
    raise RuntimeError("setup fails")

@pytest.mark.dynpool(2, job="a")
@pytest.mark.parametrize("n", range(8))
def test_a(n, resource):
    print("output of", n)
    assert resource["ready"] and n != 3

@pytest.mark.dynpool(1)
class TestB:
    def test_skip(self):
        pytest.skip("no")

    @pytest.mark.xfail(reason="known")
    def test_xfail(self):
        assert 0

    def test_setup_error(self, broken):
        pass

def test_unmarked_pass():
    pass

def test_unmarked_fail():
    assert 0
"""


def _outcomes(path: str) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = sorted(child.tag for child in case if child.tag not in ("system-out", "system-err"))
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = ",".join(kinds) or "passed"
    return outcomes


# No marker at all: dynpool on, nothing pooled, so xdist schedules and runs as without it.
UNMARKED_SUITE = DIFFERENTIAL_SUITE.replace('@pytest.mark.dynpool(2, job="a")', "").replace(
    "@pytest.mark.dynpool(1)", ""
)


@pytest.mark.parametrize("suite", [DIFFERENTIAL_SUITE, UNMARKED_SUITE], ids=["marked", "unmarked"])
def test_outcomes_match_plain_xdist(pytester: pytest.Pytester, suite: str) -> None:
    assert "dynpool" not in UNMARKED_SUITE
    pytester.makepyfile(test_diff=suite)
    runs = {}
    for name, extra in (("on", ("--dynpool-workers", "3")), ("off", ("-p", "no:dynpool"))):
        result = pytester.runpytest_subprocess(
            "-n",
            "2",
            f"--junitxml={name}.xml",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            *extra,
            timeout=120,
        )
        runs[name] = (result.ret, _outcomes(str(pytester.path / f"{name}.xml")))
    assert runs["on"] == runs["off"]
    assert runs["on"][0] == 1
    assert len(runs["on"][1]) == 13


CRASH_SUITE = """
import os
import pytest

@pytest.mark.dynpool(2, job="c")
@pytest.mark.parametrize("n", range(8))
def test_c(n):
    if n == 5:
        os._exit(1)
"""


def test_a_crashed_worker_is_reported_and_replaced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crash=CRASH_SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--dynpool-workers", "2", timeout=120)
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*replacing crashed worker gw*",
            "*worker 'gw*' crashed while running 'test_crash.py::test_c[[]5[]]'*",
        ]
    )


STOP_SUITE = """
import os
import pathlib
import time

import pytest

@pytest.mark.dynpool(2, job="x")
@pytest.mark.parametrize("n", range(12))
def test_x(n, request):
    with open(os.environ["STARTED_LOG"], "a") as log:
        log.write(f"{n}\\n")
    if n == 0:
        assert 0, "the first failure"
    # Every other test waits until the run is told to stop (at most 30 s).
    stop = pathlib.Path(request.config.workerinput["dynpool_channel"]) / "stop"
    for _ in range(600):
        if stop.exists():
            return
        time.sleep(0.05)
"""


def test_x_stops_dispatch_in_every_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_stop=STOP_SUITE)
    started_log = pytester.path / "started.log"
    monkeypatch.setenv("STARTED_LOG", str(started_log))
    result = pytester.runpytest_subprocess("-n", "2", "--dynpool-workers", "2", "-x", timeout=120)
    assert result.ret == 2  # xdist ends a stopped run as interrupted, with or without dynpool
    result.stdout.fnmatch_lines(["not started: * pooled items*", "*stopping after 1 failures*"])
    started = started_log.read_text().split()
    # Each worker has a share of 1: the failing item, the one in flight on the
    # other worker, and at most one more each while the stop travels.
    assert len(started) <= 4
    assert len(started) < 12


GROUP_SUITE = """
import os
import urllib.request

import pytest

def call(endpoint):
    with urllib.request.urlopen(os.environ["GATED_URL"] + "/" + endpoint, timeout=120) as r:
        assert r.status == 200

@pytest.mark.xdist_group("db")
@pytest.mark.parametrize("n", range(6))
def test_db(n):
    call("group-db")

@pytest.mark.xdist_group(name="queue")
@pytest.mark.parametrize("n", range(6))
def test_queue(n):
    call("group-queue")

@pytest.mark.dynpool(3, job="free")
@pytest.mark.parametrize("n", range(9))
def test_free(n):
    call("cap3")
"""


def test_xdist_groups_become_jobs_of_cap_one(
    pytester: pytest.Pytester, server: GatedCounter
) -> None:
    pytester.makepyfile(test_groups=GROUP_SUITE)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dynpool-workers", "3", "--dynpool-xdist-groups", timeout=120
    )
    result.assert_outcomes(passed=21)
    assert server.peak["group-db"] == 1
    assert server.peak["group-queue"] == 1
    assert server.peak["cap3"] == 3
    for row in ("xdist_group=db * 1 * 6 * 6 *", "xdist_group=queue * 1 * 6 * 6 *"):
        result.stdout.fnmatch_lines([row])


def test_other_dist_modes_leave_dynpool_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=DIFFERENTIAL_SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadfile", timeout=120)
    result.stdout.fnmatch_lines(["dynpool: off (--dist loadfile: *)"])
    result.stdout.no_fnmatch_line("*= dynpool =*")


def test_xdist_version_check() -> None:
    assert check_xdist_version("3.6.0") is None
    assert check_xdist_version("3.8.0") is None
    assert "not supported" in (check_xdist_version("3.5.0") or "")
    assert "not supported" in (check_xdist_version("4.0.0") or "")


def test_split_cap() -> None:
    assert split_cap(8, 2) == [4, 4]
    assert split_cap(3, 2) == [2, 1]
    assert split_cap(1, 4) == [1]
    assert split_cap(5, 3) == [2, 2, 1]


@given(
    workers=st.integers(1, 5),
    jobs=st.lists(st.tuples(st.integers(1, 9), st.integers(0, 20), st.booleans()), max_size=6),
    exclusive=st.integers(0, 10),
)
def test_partition_gives_every_item_once_and_never_more_than_the_cap(
    workers: int, jobs: list[tuple[int, int, bool]], exclusive: int
) -> None:
    specs = []
    next_index = 0
    for cap, count, per_worker in jobs:
        specs.append(JobItems(cap, list(range(next_index, next_index + count)), per_worker))
        next_index += count
    exclusive_items = list(range(next_index, next_index + exclusive))
    shares = partition(workers, specs, exclusive_items)
    every = sorted(i for share in shares for i in share.items)
    assert every == list(range(next_index + exclusive))
    for job_index, spec in enumerate(specs):
        holders = [share for share in shares if set(share.items) & set(spec.items)]
        assert all(job_index in share.caps and share.caps[job_index] >= 1 for share in holders)
        total = sum(share.caps.get(job_index, 0) for share in shares)
        if spec.cap_per_worker:
            assert all(share.caps[job_index] == spec.cap for share in holders)
        else:
            assert total <= spec.cap
            if len(spec.items) >= spec.cap:
                # The whole cap is usable: shares sum to it unless items run out.
                assert total == spec.cap or len(holders) < min(spec.cap, workers)
    sizes = [sum(i in exclusive_items for i in share.items) for share in shares]
    assert max(sizes, default=0) - min(sizes, default=0) <= 1


ISOLATION_SUITE = """
import logging
import threading
import time
import warnings

import pytest

# Cap 4 on two workers: a share of 2 each, and 4 items each; pairs meet at the
# barrier, so two tests are in flight at once in each worker: their output must not mix.
BARRIER = threading.Barrier(2, timeout=30)

@pytest.mark.dynpool(4, job="iso")
@pytest.mark.parametrize("n", range(8))
def test_iso(n):
    print(f"stdout of {n}")
    logging.getLogger("iso").warning("log of %s", n)
    warnings.warn(UserWarning(f"warning of {n}"))
    BARRIER.wait()

@pytest.mark.dynpool(2, job="slow", timeout=1)
def test_hangs():
    time.sleep(60)
"""


def test_output_logs_warnings_and_timeouts_per_test_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_iso=ISOLATION_SUITE)
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dynpool-workers",
        "4",
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=all",
        "-W",
        "default::UserWarning",
        timeout=120,
    )
    result.assert_outcomes(passed=8, failed=1, warnings=8)
    result.stdout.fnmatch_lines(["*Timeout: test_iso.py::test_hangs was still running after 1s*"])
    for case in ET.parse(str(pytester.path / "junit.xml")).getroot().iter("testcase"):
        name = case.get("name") or ""
        if not name.startswith("test_iso["):
            continue
        n = name[len("test_iso[") : -1]
        text = "".join(child.text or "" for child in case)
        assert f"stdout of {n}" in text
        assert f"log of {n}" in text
        others = [m for m in range(8) if str(m) != n]
        assert not any(f"stdout of {m}\n" in text or f"log of {m}\n" in text for m in others)
    for number in range(8):
        result.stdout.fnmatch_lines(
            [f"test_iso.py::test_iso[[]{number}[]]", f"*UserWarning: warning of {number}"]
        )


INTERRUPT_SUITE = """
import os
import time

import pytest

@pytest.mark.dynpool(4, job="s")
@pytest.mark.parametrize("n", range(40))
def test_s(n):
    with open(os.environ["STARTED_LOG"], "a") as log:
        log.write(f"{n}\\n")
    time.sleep(0.5)
"""


def test_ctrl_c_under_xdist_ends_the_run_without_hanging(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_slow=INTERRUPT_SUITE)
    started_log = pytester.path / "started.log"
    command = [sys.executable, "-m", "pytest", "-n", "2", "--dynpool-workers", "4", "-q"]
    env = {**os.environ, "STARTED_LOG": str(started_log)}
    process = subprocess.Popen(
        command,
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C goes to the process group: controller and workers
    )
    try:
        for _ in range(1200):  # until both workers run tests (at most 60 s)
            if started_log.exists() and len(started_log.read_text().split()) >= 8:
                break
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    text = output.decode()
    assert process.returncode == 2, text
    assert "KeyboardInterrupt" in text
    assert len(started_log.read_text().split()) < 40


HTTP_SUITE = """
import pytest

@pytest.mark.dynpool(4, job="api")
@pytest.mark.parametrize("n", range(12))
def test_api(n, dynpool_client):
    assert dynpool_client.get("/api").status_code == 200
"""


def test_http_statistics_are_merged_over_workers(
    pytester: pytest.Pytester, server: GatedCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    CAPS["api"] = 4  # the server's gate for this endpoint opens at 4 in flight
    monkeypatch.setenv("DYNPOOL_BASE_URL", os.environ["GATED_URL"])
    try:
        pytester.makepyfile(test_http=HTTP_SUITE)
        result = pytester.runpytest_subprocess("-n", "2", "--dynpool-workers", "4", timeout=120)
    finally:
        del CAPS["api"]
    result.assert_outcomes(passed=12)
    assert server.peak["api"] == 4
    assert server.timeouts == []
    result.stdout.fnmatch_lines(
        [
            "*= dynpool http =*",
            "job * requests * 2xx *",
            "api * 12 * 12 * 0 * 0 * 0 * 0 *",
            "(all 2 xdist workers*",
        ]
    )
