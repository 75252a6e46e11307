"""What a pooled run reports when a test stops it, with --sw, nextitem and the dynpool table.

Regression tests for issue 11 items 1, 5, 10 and 20, differential against plain
pytest (``-p no:dynpool``) where the item is about pytest's behaviour.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from .conftest import outcomes_by_nodeid

INI = """
[pytest]
markers =
    dynpool: registered so that -p no:dynpool runs without warnings
"""

# --- 11.1: a test that stops the run does not throw away the reports of the others --------

STOPPED_BESIDE_A_FAILURE = """
import threading
import pytest

pytestmark = pytest.mark.dynpool(2)
stopping = threading.Event()

@pytest.fixture
def pooled(request):
    return request.config.pluginmanager.has_plugin("dynpool")

def test_fails_slowly(pooled):
    if pooled:
        assert stopping.wait(30)  # fails only once the other test has stopped the run
    assert False, "failed after the run was stopped"

def test_stops(pooled):
    stopping.set()
    STOP
"""


def _testcases(path: str) -> list[tuple[str, list[str]]]:
    root = ET.parse(path).getroot()
    return sorted(
        (case.attrib.get("name", ""), sorted(child.tag for child in case))
        for case in root.iter("testcase")
    )


def _lastfailed(pytester: pytest.Pytester) -> object:
    path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    return json.loads(path.read_text()) if path.exists() else None


def _dynpool_row(result: pytest.RunResult) -> dict[str, str]:
    """The first job row of the dynpool table, by column name."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if re.match(r"=+ dynpool =+", line))
    header, row = lines[start + 1].split(), lines[start + 2].split()
    return dict(zip(header, row[-len(header) + 1 :], strict=False)) | {"job": row[0]}


@pytest.mark.parametrize(
    ("stop", "exit_code"),
    [("raise KeyboardInterrupt", 2), ('pytest.exit("stopped by the test", returncode=3)', 3)],
    ids=["KeyboardInterrupt", "pytest.exit"],
)
def test_a_test_that_stops_the_run_keeps_the_reports_in_flight(
    pytester: pytest.Pytester, stop: str, exit_code: int
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_stop=STOPPED_BESIDE_A_FAILURE.replace("STOP", stop))
    plain = pytester.runpytest("-p", "no:dynpool", "--junitxml=plain.xml", no_reraise_ctrlc=True)
    plain_lastfailed = _lastfailed(pytester)
    shutil.rmtree(pytester.path / ".pytest_cache")
    pooled = pytester.runpytest("--junitxml=pooled.xml", no_reraise_ctrlc=True)
    assert plain.ret == exit_code
    assert pooled.ret == plain.ret
    assert outcomes_by_nodeid(plain)["test_stop.py::test_fails_slowly"] == [
        ("call", "failed"),
        ("setup", "passed"),
        ("teardown", "passed"),
    ]
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    assert _testcases(str(pytester.path / "pooled.xml")) == _testcases(
        str(pytester.path / "plain.xml")
    )
    assert _lastfailed(pytester) == plain_lastfailed
    pooled.stdout.fnmatch_lines(["*= 1 failed in *"])
    assert "no tests ran" not in pooled.stdout.str()
    if exit_code == 2:  # pytest prints no summary after pytest.exit(returncode=3)
        # The test that stopped the run neither passed nor failed.
        row = _dynpool_row(pooled)
        assert (row["passed"], row["failed"], row.get("interrupted")) == ("0", "1", "1")


# --- 11.20: the Ctrl-C location is the test's -------------------------------------------

CTRL_C = """
import os
import signal
import time
import pytest

pytestmark = pytest.mark.dynpool(2)

def test_ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + 1.0
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
"""


def test_ctrl_c_location_is_the_tests(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_ctrl=CTRL_C)
    plain = pytester.runpytest_subprocess("-p", "no:dynpool")
    pooled = pytester.runpytest_subprocess()
    location = "*test_ctrl.py:*: KeyboardInterrupt"  # the line it was on when interrupted
    plain.stdout.fnmatch_lines(["*! KeyboardInterrupt !*", location])
    pooled.stdout.fnmatch_lines(["*! KeyboardInterrupt !*", location])
    assert "pytest_dynpool" not in pooled.stdout.str().split("! KeyboardInterrupt !")[-1]
    assert pooled.ret == plain.ret == 2


# --- 11.20: the dynpool table counts as pytest does ---------------------------------------

OUTCOME_KINDS = """
import pytest

pytestmark = pytest.mark.dynpool(2)

def test_subtest_fails(subtests):
    with subtests.test(msg="one"):
        assert 0
    with subtests.test(msg="two"):
        pass

@pytest.mark.xfail(strict=True)
def test_xfail():
    assert 0

@pytest.mark.xfail(strict=False)
def test_xpass():
    pass

def test_skip():
    pytest.skip("skipped")

def test_pass():
    pass
"""


def test_dynpool_table_counts_outcomes_as_pytest_does(pytester: pytest.Pytester) -> None:
    if not hasattr(pytest, "Subtests"):
        pytest.skip("pytest < 9 has no built-in subtests")
    pytester.makeini(INI)
    pytester.makepyfile(test_kinds=OUTCOME_KINDS)
    plain = pytester.runpytest("-p", "no:dynpool")
    pooled = pytester.runpytest("--dynpool-workers", "2")
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    row = {name: int(count) for name, count in _dynpool_row(pooled).items() if count.isdigit()}
    # pytest 9 counts the test with a failed subtest as failed, and the subtest as failed too
    # (SUBFAILED); the table counts items, and failed subtests apart.
    counts = plain.parseoutcomes()
    assert counts == {"failed": 2, "passed": 1, "skipped": 1, "xfailed": 1, "xpassed": 1}
    assert row["passed"] == counts["passed"]
    assert row["failed"] + row["subfailed"] == counts["failed"]
    assert (row["subfailed"], row["skipped"], row["xfailed"], row["xpassed"]) == (1, 1, 1, 1)


# --- 11.10: exclusive items get the item that runs next, as in plain pytest ---------------

NEXTITEM_CONFTEST = """
import pytest

SEEN = []

@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    SEEN.append((item.nodeid, nextitem.nodeid if nextitem is not None else None))
    return (yield)

def pytest_sessionfinish(session):
    with open("nextitems.txt", "w") as out:
        for nodeid, nextid in SEEN:
            out.write(f"{nodeid} -> {nextid}\\n")
"""


def test_exclusive_items_get_the_next_item(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(NEXTITEM_CONFTEST)
    pytester.makepyfile(
        test_a_exclusive="def test_e1(): pass\ndef test_e2(): pass\ndef test_e3(): pass\n",
        test_b_pooled=(
            "import pytest\npytestmark = pytest.mark.dynpool(1)\n"
            "def test_p1(): pass\ndef test_p2(): pass\n"
        ),
    )
    pytester.runpytest("-p", "no:dynpool").assert_outcomes(passed=5)
    plain = (pytester.path / "nextitems.txt").read_text().splitlines()
    pytester.runpytest("--dynpool-workers", "2").assert_outcomes(passed=5)
    pooled = (pytester.path / "nextitems.txt").read_text().splitlines()
    # The exclusive items run first, in order, as in plain pytest: the same next items.
    assert pooled[:3] == plain[:3]
    assert plain[2] == "test_a_exclusive.py::test_e3 -> test_b_pooled.py::test_p1"
    # Only the last item is told it is the last (nextitem=None).
    assert sum(line.endswith("-> None") for line in pooled) == 1


# --- 11.5: --sw after a fast and a slow failure at once -----------------------------------

STEPWISE_CONFTEST = """
import threading

fast_failure_logged = threading.Event()

def pytest_runtest_logreport(report):
    if report.nodeid.endswith("test_fails_fast") and report.failed:
        fast_failure_logged.set()
"""

STEPWISE_SUITE = """
import pytest
from conftest import fast_failure_logged

pytestmark = pytest.mark.dynpool(2)

@pytest.fixture
def pooled(request):
    return request.config.pluginmanager.has_plugin("dynpool")

def test_fails_fast():
    assert False, "fast"

def test_fails_slowly(pooled):
    if pooled:
        assert fast_failure_logged.wait(30)  # logged after the fast failure
    assert False, "slow"

def test_after():
    pass
"""


def test_stepwise_resumes_at_the_first_failure(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(STEPWISE_CONFTEST)
    pytester.makepyfile(test_sw=STEPWISE_SUITE)
    plain = [pytester.runpytest("-p", "no:dynpool", "--sw") for _ in range(2)]
    shutil.rmtree(pytester.path / ".pytest_cache")
    pooled = [pytester.runpytest("--dynpool-workers", "2", "--sw") for _ in range(2)]
    # --sw stops the session at a failure: "Interrupted", exit code 2.
    assert [r.ret for r in pooled] == [r.ret for r in plain] == [2, 2]
    # The second run starts at the fast failure, which fails again: never green.
    second = outcomes_by_nodeid(pooled[1])
    assert ("call", "failed") in second["test_sw.py::test_fails_fast"]
    assert (
        second["test_sw.py::test_fails_fast"]
        == outcomes_by_nodeid(plain[1])["test_sw.py::test_fails_fast"]
    )


def test_resume_point_is_the_first_test_that_did_not_pass() -> None:
    from pytest_dynpool.runtime.stepwise import resume_point

    order = ["a", "b", "c", "d"]
    # c failed fast, d slowly; b never started: resume at b, never at d.
    assert resume_point(order, {"a", "c", "d"}, {"c", "d"}, skip_first_failure=False) == "b"
    assert resume_point(order, {"a", "b", "c", "d"}, {"c", "d"}, False) == "c"
    # --sw-skip: the first failure is the one it skips; resume at the next that did not pass.
    assert resume_point(order, {"a", "b", "c", "d"}, {"c", "d"}, True) == "d"
    assert resume_point(order, {"a", "b", "c", "d"}, set(), False) is None
