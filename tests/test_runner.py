"""The run loop: plain behaviour without markers, reports, -x, interrupts, errors."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

import pytest

from .conftest import outcomes_by_nodeid

VARIED_SUITE = """
import pytest

@pytest.fixture(scope="module")
def resource():
    print("resource setup")
    yield 1
    print("resource teardown")

def test_pass(resource):
    print("hello")

def test_fail():
    assert {"a": 1} == {"a": 2}

@pytest.mark.skip(reason="nope")
def test_skip():
    pass

@pytest.mark.xfail
def test_xfail():
    raise ValueError

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n, resource):
    assert n < 3

class TestC:
    def test_method(self):
        import warnings
        warnings.warn(UserWarning("careful"))
"""

_VOLATILE = re.compile(r" in \d+\.\d+s| at 0x[0-9a-f]+")
_HEADER = ("platform ", "plugins: ", "rootdir: ", "cachedir: ", "dynpool: ")


def stable_lines(result: pytest.RunResult) -> list[str]:
    """The output without timings and without the header lines that name plugins."""
    return [_VOLATILE.sub("", line) for line in result.stdout.lines if not line.startswith(_HEADER)]


@pytest.mark.parametrize("args", [[], ["-v"], ["-rA"], ["-x"], ["--tb=line", "-q"]])
def test_no_marker_runs_exactly_as_plain_pytest(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makepyfile(test_varied=VARIED_SUITE)
    plain = pytester.runpytest("-p", "no:dynpool", *args)
    with_plugin = pytester.runpytest(*args)
    assert with_plugin.ret == plain.ret
    assert outcomes_by_nodeid(with_plugin) == outcomes_by_nodeid(plain)
    assert stable_lines(with_plugin) == stable_lines(plain)


def test_reports_reach_junitxml_exactly_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_j="""
        import pytest

        pytestmark = pytest.mark.dynpool(3)

        @pytest.mark.parametrize("n", range(6))
        def test_n(n):
            print(f"out {n}")
            assert n != 4

        def test_error(missing_fixture):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4", "--junitxml=report.xml")
    result.assert_outcomes(passed=5, failed=1, errors=1)
    cases = ET.parse(pytester.path / "report.xml").getroot().iter("testcase")
    names = sorted(case.get("name", "") for case in cases)
    assert names == sorted([f"test_n[{n}]" for n in range(6)] + ["test_error"])


def test_last_failed_selects_pooled_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_lf="""
        import pytest

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(5))
        def test_n(n):
            assert n % 2 == 0
        """
    )
    first = pytester.runpytest("-p", "cacheprovider", "--dynpool-workers", "3")
    first.assert_outcomes(passed=3, failed=2)
    again = pytester.runpytest("-p", "cacheprovider", "--dynpool-workers", "3", "--lf")
    again.assert_outcomes(failed=2)
    assert sorted(outcomes_by_nodeid(again)) == ["test_lf.py::test_n[1]", "test_lf.py::test_n[3]"]


def test_collect_only_k_and_m(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sel="""
        import pytest

        pytestmark = pytest.mark.dynpool(2)

        @pytest.mark.slow
        def test_slow_one(): pass

        def test_fast_one(): pass

        def test_fast_two(): pass
        """
    )
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow tests\n")
    collected = pytester.runpytest("--collect-only", "-q")
    collected.stdout.fnmatch_lines(["test_sel.py::test_slow_one", "3 tests collected*"])
    assert collected.ret == pytest.ExitCode.OK
    by_keyword = pytester.runpytest("-k", "fast")
    by_keyword.assert_outcomes(passed=2)
    by_marker = pytester.runpytest("-m", "slow")
    by_marker.assert_outcomes(passed=1)
    nothing = pytester.runpytest("-k", "no_such_test")
    assert nothing.ret == pytest.ExitCode.NO_TESTS_COLLECTED


STOP_SUITE = """
import threading
import pytest

failure_logged = threading.Event()

def pytest_runtest_logreport(report):
    if report.failed:
        failure_logged.set()
"""


@pytest.mark.parametrize("stop_option", ["-x", "--maxfail=1"])
def test_exitfirst_lets_in_flight_items_finish_and_starts_nothing_new(
    pytester: pytest.Pytester, stop_option: str
) -> None:
    pytester.makeconftest(STOP_SUITE)
    pytester.makepyfile(
        test_stop="""
        import threading
        import pytest
        from conftest import failure_logged

        second_started = threading.Event()

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(10))
        def test_n(n):
            if n == 0:
                second_started.wait(timeout=30)  # both in flight before the failure
                raise AssertionError("first failure")
            second_started.set()
            # Item 1 is in flight with item 0: it finishes after the failure is logged.
            assert failure_logged.wait(timeout=30)
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4", stop_option)
    result.assert_outcomes(failed=1, passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["not started: 8 pooled items*", "*stopping after 1 failures*"])


def test_maxfail_two_across_jobs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_two="""
        import pytest

        @pytest.mark.dynpool(1)
        @pytest.mark.parametrize("n", range(5))
        def test_a(n):
            assert n != 0

        @pytest.mark.dynpool(1)
        @pytest.mark.parametrize("n", range(5))
        def test_b(n):
            assert n != 0
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2", "--maxfail=2")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*stopping after 2 failures*"])
    assert outcomes.get("passed", 0) < 8


def test_teardown_of_wider_fixtures_after_exitfirst_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_td="""
        import pytest

        @pytest.fixture(scope="module")
        def broken_teardown():
            yield
            raise RuntimeError("module teardown failed")

        @pytest.mark.dynpool(1)
        @pytest.mark.parametrize("n", range(4))
        def test_n(n, broken_teardown):
            assert n != 1
        """
    )
    plain = pytester.runpytest("-p", "no:dynpool", "-x")
    pooled = pytester.runpytest("-x", "--dynpool-workers", "2")
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    assert pooled.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    pooled.stdout.fnmatch_lines(["*RuntimeError: module teardown failed*"])


def test_keyboard_interrupt_in_a_pooled_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_ki="""
        import pytest

        @pytest.mark.dynpool(1)
        @pytest.mark.parametrize("n", range(5))
        def test_n(n):
            if n == 1:
                raise KeyboardInterrupt
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*", "*1 passed*"])


def test_pytest_exit_in_a_pooled_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_exit="""
        import pytest

        @pytest.mark.dynpool(1)
        @pytest.mark.parametrize("n", range(5))
        def test_n(n):
            if n == 2:
                pytest.exit("enough", returncode=7)
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2")
    assert result.ret == 7
    result.stdout.fnmatch_lines(["*2 passed*", "*Exit: enough*"])


def test_sigint_mid_run_stops_dispatch_and_exits_interrupted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sigint="""
        import os
        import signal
        import pytest

        @pytest.mark.dynpool(1)
        @pytest.mark.parametrize("n", range(6))
        def test_n(n):
            if n == 1:
                os.kill(os.getpid(), signal.SIGINT)
        """
    )
    result = pytester.runpytest_subprocess("--dynpool-workers", "2", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    # When the main thread handles the signal depends on the machine: items
    # dispatched before that finish; whatever the timing, every item is either
    # reported or counted as not started, and the one that sent it finished.
    passed = result.parseoutcomes().get("passed", 0)
    match = re.search(r"not started: (\d+) pooled items", result.stdout.str())
    not_started = int(match.group(1)) if match else 0
    assert passed >= 2
    assert passed + not_started == 6


def test_error_in_a_report_hook_is_an_internal_error_not_a_hang(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_runtest_logreport(report):
            if report.when == "call" and report.nodeid.endswith("[2]"):
                raise RuntimeError("broken reporting plugin")
        """
    )
    pytester.makepyfile(
        test_ie="""
        import pytest

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(6))
        def test_n(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "3")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["INTERNALERROR*RuntimeError: broken reporting plugin*"])


def test_captured_output_stays_with_its_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_out="""
        import sys
        import threading
        import pytest

        barrier = threading.Barrier(3, timeout=30)

        @pytest.fixture
        def noisy(request):
            print(f"setup of {request.node.name}")
            yield

        @pytest.mark.dynpool(3)
        @pytest.mark.parametrize("n", range(3))
        def test_n(n, noisy):
            barrier.wait()
            for _ in range(50):
                print(f"out from {n}")
                sys.stderr.write(f"err from {n}\\n")
            barrier.wait()
            assert False
        """
    )
    result = pytester.runpytest("--dynpool-workers", "3")
    result.assert_outcomes(failed=3)
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    for report in reports:
        n = report.nodeid[-2]
        sections = dict(report.sections)
        if report.when == "setup":
            assert sections == {"Captured stdout setup": f"setup of test_n[{n}]\n"}
        elif report.when == "call":
            assert sections["Captured stdout call"] == f"out from {n}\n" * 50
            assert sections["Captured stderr call"] == f"err from {n}\n" * 50


def test_assertion_explanations_survive_concurrency(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_assert="""
        import threading
        import pytest

        barrier = threading.Barrier(4, timeout=30)

        @pytest.mark.dynpool(4)
        @pytest.mark.parametrize("n", range(4))
        def test_n(n):
            barrier.wait()
            assert [1, 2, n] == [1, 2, -1]
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(failed=4)
    calls = [
        report
        for report in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
        if report.when == "call"
    ]
    assert len(calls) == 4
    for report in calls:
        assert f"At index 2 diff: {report.nodeid[-2]} != -1" in str(report.longrepr)


@pytest.mark.skipif(sys.platform == "win32", reason="environment variable semantics")
def test_pytest_current_test_never_breaks_a_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_env="""
        import os
        import pytest

        @pytest.mark.dynpool(8)
        @pytest.mark.parametrize("n", range(300))
        def test_n(n):
            # Other threads set and unset it too: only its value is racy.
            os.environ.get("PYTEST_CURRENT_TEST")

        def test_last():
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "8")
    result.assert_outcomes(passed=301)


def test_setup_show_from_workers_leaves_capture_alone(pytester: pytest.Pytester) -> None:
    """--setup-show suspends and resumes the global capture around its lines.

    A subprocess, because only a real terminal shows output the fd capture let through.
    """
    pytester.makepyfile(
        test_show="""
        import pytest

        @pytest.fixture
        def resource():
            return 1

        @pytest.mark.dynpool(4)
        @pytest.mark.parametrize("n", range(8))
        def test_n(n, resource):
            print(f"captured output {n}")
        """
    )
    result = pytester.runpytest_subprocess("--dynpool-workers", "4", "--setup-show")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*SETUP    F resource*"])
    result.stdout.no_fnmatch_line("*captured output*")
