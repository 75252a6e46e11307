"""Under ``pytest -n 2``: faults and stops, and per-test isolation, with dynpool on every worker.

A crashed worker, -x across workers, Ctrl-C, dynpool timeouts, and per-test output,
logs and warnings while several tests are in flight in one worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("xdist")


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
    # One thread per worker: one item in flight when it dies, so the blame is exact, as in
    # plain xdist.
    pytester.makepyfile(test_crash=CRASH_SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--dynpool-workers", "1", timeout=120)
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*replacing crashed worker gw*",
            "*worker 'gw*' crashed while running 'test_crash.py::test_c[[]5[]]'*",
        ]
    )


def test_a_crash_with_several_items_in_flight_loses_no_item(pytester: pytest.Pytester) -> None:
    # Two threads per worker: which of the items in flight called os._exit cannot be known
    # from outside the dead process. One is blamed, the others run again on the replacement
    # (README, "A crashed worker"): the crashing item never passes, every item is reported,
    # and every failure is a crash report, never a hang or a lost item.
    pytester.makepyfile(test_crash=CRASH_SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--dynpool-workers", "2", timeout=120)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 8, outcomes
    assert 1 <= outcomes.get("failed", 0) <= 2, outcomes
    result.stdout.fnmatch_lines(["*replacing crashed worker gw*"])
    result.stdout.no_fnmatch_line("*PASSED*test_c[[]5[]]*")
    crashes = [line for line in result.outlines if line.startswith("worker 'gw")]
    assert all("crashed while running 'test_crash.py::test_c[" in line for line in crashes)
    assert len(crashes) == outcomes["failed"], crashes


STOP_SUITE = """
import os
import time

import pytest

@pytest.mark.dynpool(4, job="x")
@pytest.mark.parametrize("n", range(12))
def test_x(n, request):
    with open(os.environ["STARTED_LOG"], "a") as log:
        log.write(f"{n}\\n")
    if n == 0:
        assert 0, "the first failure"
    # Every other test waits until its own worker was told to stop (at most 30 s).
    for _ in range(600):
        if request.session.shouldfail:
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
    # Cap 4 = the run's 4 threads, so the store never holds item 0 back behind items that
    # wait for its failure. Items are dealt alternately (gw0: 0, 2, ...; gw1: 1, 3, ...) and
    # each worker starts its first two: the failing item stops its worker; the items in
    # flight end only once their worker has heard of the stop, and nothing new starts.
    assert "0" in started
    assert set(started) <= {"0", "1", "2", "3"}
    assert len(started) == len(set(started))


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
    # Balance fixed: the barrier pairs items within one worker, so each worker must keep
    # the four items it was sent (a worker that stole one would wait for a fifth partner).
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dynpool-workers",
        "4",
        "--dynpool-xdist-balance=fixed",
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
