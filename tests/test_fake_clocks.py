"""A pooled test that fakes the clock (freezegun, time-machine) does not fake the pool's.

freezegun rewrites ``time.monotonic``/``perf_counter``/``time`` in every loaded
module while a test is frozen; on the pool the other tests, the timeouts, the
summary and pytest's own timing run beside it. Here every other test waits at a
barrier with the frozen one, so all of them are in flight while it is frozen,
and it stays frozen until pytest has timed their calls. Plain pytest
(``-p no:dynpool``) runs them one at a time and is the oracle for the outcomes.

The bounds on wall times and durations below are not timing assertions: they
catch a value measured against the frozen date (about 50 years).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from .conftest import outcomes_by_nodeid

SANE_SECONDS = 3600.0
BESIDE = 3

CONFTEST = f"""
import threading
import pytest

BESIDE = {BESIDE}
# Only on the pool: every test in flight at once (plain pytest runs one at a time).
meet = threading.Barrier(BESIDE + 1, timeout=60)
timed = threading.Semaphore(0)


@pytest.fixture
def pooled(request):
    return request.config.pluginmanager.has_plugin("dynpool")


@pytest.fixture
def tell_when_timed(pooled):
    yield
    if pooled:
        timed.release()  # teardown: pytest has timed this test's call
"""

FREEZEGUN_TEST = """
import time
import pytest
from freezegun import freeze_time
from conftest import BESIDE, meet, timed

@pytest.mark.parametrize("n", range(BESIDE))
def test_beside(n, pooled, tell_when_timed):
    if pooled:
        meet.wait()
    assert n != 2, "fails as plain pytest fails it"

def test_frozen(pooled):
    with freeze_time("2020-01-01"):
        assert time.time() == 1577836800.0
        if pooled:
            meet.wait()
            for _ in range(BESIDE):
                assert timed.acquire(timeout=60)

def test_after():
    pass
"""

TIME_MACHINE_TEST = FREEZEGUN_TEST.replace(
    "from freezegun import freeze_time", "import datetime, time_machine"
).replace(
    'with freeze_time("2020-01-01"):',
    "with time_machine.travel(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc), "
    "tick=False):",
)

POOL = ["--dynpool-unmarked=pool", f"--dynpool-workers={BESIDE + 1}", "--dynpool-timeout=60"]


def _seconds(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found is not None, text
    return float(found.group(1))


def _assert_sane_times(result: pytest.RunResult, *, pooled: bool) -> None:
    """pytest's durations and closing line, and the dynpool summary, on the real clock."""
    text = result.stdout.str()
    assert _seconds(r"=+ \d+ \w+.* in (\d+\.\d+)s", text) < SANE_SECONDS  # pytest's closing line
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    assert reports
    assert all(0 <= report.duration < SANE_SECONDS for report in reports), [
        (report.nodeid, report.when, report.duration) for report in reports
    ]
    now = time.time()  # this process's clock is not frozen now
    assert all(abs(report.stop - now) < SANE_SECONDS for report in reports), [
        (report.nodeid, report.when, report.stop) for report in reports
    ]
    if pooled:
        assert _seconds(r"wall (\d+\.\d+)s", text) < SANE_SECONDS


@pytest.mark.parametrize("faker", ["freezegun", "time_machine"])
def test_a_frozen_clock_in_one_test_is_not_the_pools(
    pytester: pytest.Pytester, tmp_path: Path, faker: str
) -> None:
    pytest.importorskip(faker)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_clock=FREEZEGUN_TEST if faker == "freezegun" else TIME_MACHINE_TEST)
    plain = pytester.runpytest("-p", "no:dynpool")
    report = tmp_path / "report.json"
    pooled = pytester.runpytest(*POOL, f"--dynpool-report={report}")

    assert outcomes_by_nodeid(plain)["test_clock.py::test_frozen"] == [
        ("call", "passed"),
        ("setup", "passed"),
        ("teardown", "passed"),
    ]
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    assert pooled.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    assert "Timeout" not in pooled.stdout.str()
    pooled.stdout.fnmatch_lines(["*pool: 4 workers, peak 4 in flight, wall *"])
    _assert_sane_times(plain, pooled=False)
    _assert_sane_times(pooled, pooled=True)

    run = json.loads(report.read_text())["run"]
    assert run["timed_out"] == []
    assert 0 < run["pool_wall_seconds"] <= run["wall_seconds"] < SANE_SECONDS
