"""Hung pooled tests: a per-item timeout fails the item, gives its slot back and moves on.

The stuck tests wait on an Event that a session fixture sets when the session
ends, so no thread outlives the test that made it; every test joins the
workers afterwards and checks that none is left.
"""

from __future__ import annotations

from collections import Counter

import pytest

from .conftest import assert_no_worker_left

RELEASE_AT_SESSION_END = """
import threading
import pytest

release = threading.Event()

@pytest.fixture(scope="session", autouse=True)
def release_stuck_threads():
    yield
    release.set()  # the session is over: let the threads left behind finish
"""

STUCK_IN_CALL = """
import pytest
from conftest import release

@pytest.mark.dynpool(2{timeout})
def test_stuck():
    release.wait()

@pytest.mark.dynpool(2)
@pytest.mark.parametrize("n", range(4))
def test_other(n):
    pass
"""


def assert_each_item_logged_once(result: pytest.RunResult) -> None:
    reprec = result.reprec  # type: ignore[attr-defined]
    starts = Counter(call.nodeid for call in reprec.getcalls("pytest_runtest_logstart"))
    finishes = Counter(call.nodeid for call in reprec.getcalls("pytest_runtest_logfinish"))
    phases = Counter(
        (report.nodeid, report.when) for report in reprec.getreports("pytest_runtest_logreport")
    )
    assert set(starts.values()) == set(finishes.values()) == set(phases.values()) == {1}
    assert set(starts) == set(finishes) == {nodeid for nodeid, _ in phases}


@pytest.mark.parametrize(
    ("marker_timeout", "args", "ini"),
    [
        (", timeout=0.5", [], ""),
        ("", ["--dynpool-timeout", "0.5"], ""),
        ("", [], "dynpool_timeout = 0.5"),
        (", timeout=0.5", ["--dynpool-timeout", "0"], "dynpool_timeout = 0"),
    ],
    ids=["marker", "option", "ini", "marker-beats-off"],
)
def test_stuck_item_fails_and_a_new_worker_takes_its_place(
    pytester: pytest.Pytester, marker_timeout: str, args: list[str], ini: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makeconftest(RELEASE_AT_SESSION_END)
    pytester.makepyfile(test_hang=STUCK_IN_CALL.format(timeout=marker_timeout))
    # One worker: the other items can only run on the replacement thread.
    result = pytester.runpytest("--dynpool-workers", "1", *args)
    assert_no_worker_left()
    result.assert_outcomes(passed=4, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert_each_item_logged_once(result)
    failed = [r for r in result.reprec.getreports("pytest_runtest_logreport") if r.failed]  # type: ignore[attr-defined]
    assert [(r.nodeid, r.when) for r in failed] == [("test_hang.py::test_stuck", "call")]
    longrepr = str(failed[0].longrepr)
    assert "still running after 0.5s (dynpool timeout, in call)" in longrepr
    assert "release.wait()" in longrepr  # where it was stuck
    result.stdout.fnmatch_lines(
        ["timeout: 1 items failed for running too long; 1 worker threads left behind*"]
    )


def test_marker_timeout_zero_turns_the_option_off(pytester: pytest.Pytester) -> None:
    """test_exempt outlives its neighbour's timeout, which it waits to see reported."""
    pytester.makeconftest(
        RELEASE_AT_SESSION_END
        + """
neighbour_timed_out = threading.Event()

def pytest_runtest_logreport(report):
    if report.nodeid.endswith("test_stuck") and report.failed:
        neighbour_timed_out.set()
"""
    )
    pytester.makepyfile(
        test_exempt="""
        import pytest
        from conftest import neighbour_timed_out, release

        @pytest.mark.dynpool(2, job="j", timeout=0)
        def test_exempt():
            assert neighbour_timed_out.wait(timeout=60)

        @pytest.mark.dynpool(2, job="j")
        def test_stuck():
            release.wait()
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2", "--dynpool-timeout", "0.3")
    assert_no_worker_left()
    result.assert_outcomes(passed=1, failed=1)
    assert_each_item_logged_once(result)
    result.stdout.fnmatch_lines(
        ["Timeout: test_exempt.py::test_stuck was still running after 0.3s*"]
    )


def test_stuck_in_setup_is_an_error_and_stuck_in_teardown_a_teardown_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RELEASE_AT_SESSION_END)
    pytester.makepyfile(
        test_fixtures="""
        import pytest
        from conftest import release

        @pytest.fixture
        def hangs_in_setup():
            release.wait()

        @pytest.fixture
        def hangs_in_teardown():
            yield
            release.wait()

        @pytest.mark.dynpool(3, timeout=0.5)
        def test_setup(hangs_in_setup):
            pass

        @pytest.mark.dynpool(3, timeout=0.5)
        def test_teardown(hangs_in_teardown):
            pass

        @pytest.mark.dynpool(3)
        @pytest.mark.parametrize("n", range(3))
        def test_fine(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2")
    assert_no_worker_left()
    result.assert_outcomes(passed=4, errors=2)
    assert_each_item_logged_once(result)
    failed = {
        (r.nodeid, r.when)
        for r in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
        if r.failed
    }
    assert failed == {
        ("test_fixtures.py::test_setup", "setup"),
        ("test_fixtures.py::test_teardown", "teardown"),
    }
    result.stdout.fnmatch_lines(["timeout: 2 items failed*; 2 worker threads left behind*"])


def test_exitfirst_counts_a_timeout_as_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RELEASE_AT_SESSION_END)
    pytester.makepyfile(
        test_x="""
        import pytest
        from conftest import release

        @pytest.mark.dynpool(1, job="j", timeout=0.5)
        def test_stuck():
            release.wait()

        @pytest.mark.dynpool(1, job="j")
        @pytest.mark.parametrize("n", range(3))
        def test_later(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "1", "-x")
    assert_no_worker_left()
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])
