"""Under ``pytest -n 2``: what the controller does with the run's limits store.

A crashed worker's leases come back at once (not when they expire), unmarked tests
take no lease, the summary's peaks are the store's, and an interrupted run still
gets its summary. Caps and peaks are proven at a real HTTP server in this process
(``gated_server``) and by reading the SQLite store; no clock is asserted. Gate
waits end after 30 s as a safety net only (the peak then stays short and the test
fails); each run is bounded by pytester's timeout.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from .gated_server import GatedCounter, gated_server
from .redis_server import RedisServer

pytest.importorskip("xdist")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedCounter]:
    with gated_server(monkeypatch) as counter:
        yield counter


CALL = """
import os
import urllib.request


def call(endpoint):
    with urllib.request.urlopen(os.environ["GATED_URL"] + "/" + endpoint, timeout=120) as r:
        assert r.status == 200
"""

CRASH_SUITE = (
    CALL
    + """
import sqlite3

import pytest

STORE = os.environ["STORE_PATH"]

@pytest.mark.dynpool(1, job="one")
@pytest.mark.parametrize("n", range(4))
def test_one(n):
    call("one")
    if n == 1:
        # The job's only slot is this test's: note its holder, then die holding it.
        with sqlite3.connect(STORE) as db:
            (owner,) = db.execute("SELECT owner FROM dynpool_leases WHERE job = 'one'").fetchone()
        with open(os.environ["DEAD_OWNER"], "w") as out:
            out.write(owner)
        os._exit(1)
"""
)

# On the controller, after dynpool's own hook: what the store holds of the dead worker.
CRASH_CONFTEST = """
import os
import sqlite3

import pytest

@pytest.hookimpl(trylast=True)
def pytest_testnodedown(node, error):
    if error is None or not os.path.exists(os.environ["DEAD_OWNER"]):
        return
    with open(os.environ["DEAD_OWNER"]) as source:
        owner = source.read()
    with sqlite3.connect(os.environ["STORE_PATH"]) as db:
        (held,) = db.execute(
            "SELECT COUNT(*) FROM dynpool_leases WHERE owner = ?", (owner,)
        ).fetchone()
    with open(os.environ["HELD_AFTER_CRASH"], "a") as out:
        out.write(f"{held}\\n")
"""


def test_a_crashed_workers_leases_come_back_before_its_replacement_starts(
    pytester: pytest.Pytester, server: GatedCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Leases of an hour: had the controller not given the dead worker's slot back, the
    # job's other items would wait for it until pytester's timeout ends the run.
    store = pytester.path / "limits.db"
    for name, value in [
        ("STORE_PATH", store),
        ("DEAD_OWNER", pytester.path / "dead_owner"),
        ("HELD_AFTER_CRASH", pytester.path / "held_after_crash"),
    ]:
        monkeypatch.setenv(name, str(value))
    pytester.makepyfile(test_crash=CRASH_SUITE)
    pytester.makeconftest(CRASH_CONFTEST)
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dynpool-workers",
        "1",
        f"--dynpool-backend=sqlite://{store}?lease=3600",
        timeout=120,
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*worker 'gw*' crashed while running 'test_crash.py::test_one[[]1[]]'*",
            "xdist: worker gw* crashed; leases it held, given back at once: 1",
        ]
    )
    # Read on the controller as soon as xdist said the worker was down: nothing left.
    assert (pytester.path / "held_after_crash").read_text().split() == ["0"]
    assert server.peak["one"] == 1  # cap 1 held, also across the crash


REDIS_CRASH_SUITE = (
    CALL
    + """
import pytest

@pytest.mark.dynpool(1, job="one")
@pytest.mark.parametrize("n", range(4))
def test_one(n):
    call("one")
    if n == 1:
        os._exit(1)  # holding the job's only slot
"""
)

# On the controller, after dynpool's own hook: the dead worker's leases left in Redis.
REDIS_CRASH_CONFTEST = """
import os

import pytest
import redis

@pytest.hookimpl(trylast=True)
def pytest_testnodedown(node, error):
    if error is None:
        return
    url, namespace, holder = node.workerinput["dynpool_store"]
    client = redis.Redis.from_url(url.split("?")[0])
    tokens = client.zrange(f"dynpool:{namespace}:{{one}}:leases", 0, -1)
    held = [token for token in tokens if token.decode().startswith(holder + "/")]
    with open(os.environ["HELD_AFTER_CRASH"], "a") as out:
        out.write(f"{len(held)}\\n")
"""


def test_a_crashed_workers_leases_come_back_at_once_from_redis_too(
    pytester: pytest.Pytester,
    server: GatedCounter,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
) -> None:
    held_after_crash = pytester.path / "held_after_crash"
    monkeypatch.setenv("HELD_AFTER_CRASH", str(held_after_crash))
    pytester.makepyfile(test_crash=REDIS_CRASH_SUITE)
    pytester.makeconftest(REDIS_CRASH_CONFTEST)
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dynpool-workers",
        "1",
        f"--dynpool-backend={redis_server.url}?lease=3600",
        f"--dynpool-namespace=crash-{uuid.uuid4().hex[:8]}",
        timeout=120,
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["xdist: worker gw* crashed; leases it held, given back at once: 1"]
    )
    assert held_after_crash.read_text().split() == ["0"]
    assert server.peak["one"] == 1


UNMARKED_SUITE = (
    CALL
    + """
import pytest

@pytest.mark.parametrize("n", range(8))
def test_unmarked(n):
    call("unmarked")

@pytest.mark.dynpool(1, job="marked")
def test_marked():
    call("marked")
"""
)


@pytest.mark.parametrize("store", ["the run's own", "a store of the user's"])
def test_pooled_unmarked_tests_follow_xdist_and_take_no_lease(
    pytester: pytest.Pytester, server: GatedCounter, store: str
) -> None:
    # Two processes of two threads run four unmarked tests at once, as four processes'
    # worth of xdist would: the store does not hold them to one pool's worth (2).
    server.caps = {"unmarked": 4}
    pytester.makepyfile(test_unmarked=UNMARKED_SUITE)
    args = ["-n", "2", "--dynpool-workers", "2", "--dynpool-unmarked=pool", "-p", "no:randomly"]
    if store != "the run's own":
        args.append(f"--dynpool-backend=sqlite://{pytester.path / 'limits.db'}")
    result = pytester.runpytest_subprocess(*args, timeout=120)
    result.assert_outcomes(passed=9)
    assert server.timeouts == []
    assert server.peak["unmarked"] == 4
    assert server.total_peak <= 4  # never more than the two pools' threads
    # The summary's peak for the job is the run's (2 per worker), not one pool's cap.
    assert any(re.match(r"unmarked\s+2\s+8\s+8\s+0\s+0\s+4\s", line) for line in result.outlines)


PEAK_SUITE = (
    CALL
    + """
import sqlite3
import time

import pytest

def _one_worker_at_a_time(request):
    # Unmarked, so each runs before its worker's pooled items. The first to start lets
    # its worker go on; the other holds its worker until the first worker's item of job
    # x is done and its slot given back: x never has items in flight in both at once.
    try:
        fd = os.open(os.environ["FIRST"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)
        return
    url, namespace = request.config.workerinput["dynpool_store"][:2]
    done = os.environ["X_DONE"]
    for _ in range(600):  # at most 30 s
        if os.path.exists(done):
            with sqlite3.connect(url[len("sqlite://"):]) as db:
                (held,) = db.execute(
                    "SELECT COUNT(*) FROM dynpool_leases WHERE namespace = ? AND job = 'x'",
                    (namespace,),
                ).fetchone()
            if held == 0:
                return
        time.sleep(0.05)

def test_first(request):
    _one_worker_at_a_time(request)

def test_second(request):
    _one_worker_at_a_time(request)

@pytest.mark.dynpool(2, job="x")
@pytest.mark.parametrize("n", range(2))
def test_x(n):
    call("x")
    with open(os.environ["X_DONE"], "a") as out:
        out.write(f"{n}\\n")
"""
)


def test_the_summary_peak_is_the_stores_over_all_workers(
    pytester: pytest.Pytester, server: GatedCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each worker ran one item of x (the split deals a job evenly), never both at once:
    # the workers' peaks sum to 2, but the store saw one lease at a time, as the server
    # saw one request at a time.
    monkeypatch.setenv("FIRST", str(pytester.path / "first"))
    monkeypatch.setenv("X_DONE", str(pytester.path / "x_done"))
    pytester.makepyfile(test_peak=PEAK_SUITE)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dynpool-workers", "1", "-p", "no:randomly", timeout=120
    )
    result.assert_outcomes(passed=4)
    assert server.peak["x"] == 1
    rows = [line for line in result.outlines if re.match(r"x\s+2\s+2\s+2\s+0\s+0\s", line)]
    assert len(rows) == 1, result.outlines
    assert rows[0].split()[-2] == str(server.peak["x"])  # the peak column, before busy s
    result.stdout.fnmatch_lines(["xdist: 2 workers*job peaks as the limits store saw them*"])


INTERRUPT_SUITE = """
import os
import signal
import time

import pytest

@pytest.mark.dynpool(2, job="s")
@pytest.mark.parametrize("n", range(4))
def test_s(n):
    with open(os.environ["S_DONE"], "a") as out:
        out.write(f"{n}\\n")

@pytest.mark.dynpool(1, job="z")
def test_z_ctrl_c():
    # Once the other tests ran (at most 30 s), Ctrl-C reaches the controller alone (a
    # signal to its process): its loop ends the run, and the workers are torn down
    # before they send their figures.
    for _ in range(600):
        if os.path.exists(os.environ["S_DONE"]):
            with open(os.environ["S_DONE"]) as done:
                if len(done.read().split()) == 4:
                    break
        time.sleep(0.05)
    os.kill(os.getppid(), signal.SIGINT)
    time.sleep(60)
"""


def test_ctrl_c_under_xdist_prints_the_summary_of_what_ran(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_interrupt=INTERRUPT_SUITE)
    args = ["-n", "2", "-p", "no:randomly"]
    monkeypatch.setenv("S_DONE", str(pytester.path / "plain_done"))
    plain = pytester.runpytest_subprocess(*args, "-p", "no:dynpool", timeout=120)
    monkeypatch.setenv("S_DONE", str(pytester.path / "dynpool_done"))
    result = pytester.runpytest_subprocess(*args, "--dynpool-workers", "2", timeout=120)
    assert plain.ret == pytest.ExitCode.INTERRUPTED
    assert result.ret == plain.ret
    result.stdout.fnmatch_lines(
        [
            "*= dynpool =*",
            "job * cap * items * passed *",
            "s * 2 * 4 *",
            "xdist: interrupted before the workers sent their figures (? of 2 did): "
            "the table is built from the reports of * tests the controller received*",
        ]
    )
    # The table counts what the terminal counted.
    row = next(line for line in result.outlines if re.match(r"s\s+2\s+4\s", line))
    passed = result.parseoutcomes().get("passed", 0)
    assert int(row.split()[3]) == passed
