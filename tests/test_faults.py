"""Faults injected into pooled runs end as they end in plain pytest, and leave no thread behind.

Each fault runs with the plugin off and on (in process, so that the workers'
threads can be checked afterwards). With one worker the order is plain
pytest's, so exit code, summary counts and every report must be equal; with
several workers the items already in flight when the run stops also finish,
so the check is that every item that started was reported and the exit code is
pytest's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from .conftest import assert_no_worker_left, outcomes_by_nodeid

INI = """
[pytest]
markers =
    dynpool: registered so that -p no:dynpool runs without warnings
"""

POOLED_TESTS = """
import pytest

@pytest.mark.dynpool({cap}, job="a")
@pytest.mark.parametrize("n", range(5))
def test_a(n):
    {body}

@pytest.mark.dynpool({cap}, job="b")
@pytest.mark.parametrize("n", range(3))
def test_b(n):
    pass
"""


@dataclass(eq=False)  # plugins must be hashable
class StartedItems:
    """A plugin that notes every item whose protocol started, on whichever thread."""

    nodeids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> object:
        with self.lock:
            self.nodeids.append(item.nodeid)
        return (yield)


@dataclass(frozen=True)
class Fault:
    conftest: str = ""
    body: str = "pass"
    internal_error: bool = False


FAULTS = {
    "runtest_setup hook raises": Fault(
        conftest="""
def pytest_runtest_setup(item):
    if item.name in ("test_a[2]", "test_b[1]"):
        raise RuntimeError("broken setup hook")
"""
    ),
    "runtest_makereport hook raises": Fault(
        conftest="""
def pytest_runtest_makereport(item, call):
    if item.name == "test_a[2]" and call.when == "call":
        raise RuntimeError("broken makereport hook")
""",
        internal_error=True,
    ),
    "runtest_logreport hook raises": Fault(
        conftest="""
def pytest_runtest_logreport(report):
    if report.nodeid.endswith("test_a[2]") and report.when == "call":
        raise RuntimeError("broken logreport hook")
""",
        internal_error=True,
    ),
    "KeyboardInterrupt in a test": Fault(body="if n == 2:\n        raise KeyboardInterrupt"),
    "SystemExit in a test": Fault(body="if n in (1, 3):\n        raise SystemExit(3)"),
    "pytest.exit() in a test": Fault(
        body='if n == 2:\n        pytest.exit("enough", returncode=7)'
    ),
}


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, list[str]]:
    started = StartedItems()
    result = pytester.runpytest(*args, plugins=[started], no_reraise_ctrlc=True)
    assert_no_worker_left()
    return result, started.nodeids


def assert_started_items_reported(result: pytest.RunResult, started: list[str]) -> None:
    """Each started item has its setup logged, and its teardown unless the run ended in it."""
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    setups = [r.nodeid for r in reports if r.when == "setup"]
    teardowns = [r.nodeid for r in reports if r.when == "teardown"]
    assert sorted(setups) == sorted(started)
    assert len(set(teardowns)) == len(teardowns)
    assert len(started) - len(teardowns) <= 1


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_with_one_worker_ends_exactly_as_plain_pytest(
    pytester: pytest.Pytester, name: str
) -> None:
    fault = FAULTS[name]
    pytester.makeini(INI)
    pytester.makeconftest(fault.conftest)
    pytester.makepyfile(test_faults=POOLED_TESTS.format(cap=1, body=fault.body))
    # One job of each at a time, one worker, collection order: plain pytest's order.
    plain, plain_started = run(pytester, "-p", "no:dynpool")
    pooled, pooled_started = run(
        pytester, "--dynpool-workers", "1", "--dynpool-order", "collection", "-p", "no:randomly"
    )
    assert pooled.ret == plain.ret != pytest.ExitCode.OK
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    if fault.internal_error:
        pooled.stdout.fnmatch_lines(["INTERNALERROR*RuntimeError: broken*"])
        # A passed item's reports are logged after it ended, while its worker
        # goes on: items after the broken report may have run, unreported, as
        # pytest reports nothing after an INTERNALERROR.
        assert set(plain_started) <= set(pooled_started)
    else:
        assert sorted(pooled_started) == sorted(plain_started)
        assert pooled.parseoutcomes() == plain.parseoutcomes()
        assert_started_items_reported(pooled, pooled_started)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_with_several_workers_reports_every_started_item(
    pytester: pytest.Pytester, name: str
) -> None:
    fault = FAULTS[name]
    pytester.makeini(INI)
    pytester.makeconftest(fault.conftest)
    pytester.makepyfile(test_faults=POOLED_TESTS.format(cap=3, body=fault.body))
    plain, _ = run(pytester, "-p", "no:dynpool")
    pooled, started = run(pytester, "--dynpool-workers", "4")
    assert pooled.ret == plain.ret
    if fault.internal_error:
        pooled.stdout.fnmatch_lines(["INTERNALERROR*RuntimeError: broken*"])
    else:
        assert_started_items_reported(pooled, started)


@pytest.mark.parametrize("stop", ["-x", "--maxfail=2"])
def test_failures_in_several_jobs_at_once_stop_like_plain_pytest(
    pytester: pytest.Pytester, stop: str
) -> None:
    """Three jobs fail together (held at a barrier): the run stops at pytest's count."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_stop="""
        import threading
        import pytest

        together = threading.Barrier(3, timeout=30)

        def hold_together():
            # Only in the pool: plain pytest runs them one after the other.
            if threading.current_thread().name.startswith("dynpool-worker-"):
                together.wait()

        @pytest.mark.dynpool(1, job="a")
        @pytest.mark.parametrize("n", range(4))
        def test_a(n):
            if n == 0:
                hold_together()
                assert False, "a fails"

        @pytest.mark.dynpool(1, job="b")
        @pytest.mark.parametrize("n", range(4))
        def test_b(n):
            if n == 0:
                hold_together()
                assert False, "b fails"

        @pytest.mark.dynpool(1, job="c")
        @pytest.mark.parametrize("n", range(4))
        def test_c(n):
            if n == 0:
                hold_together()
                assert False, "c fails"
        """
    )
    plain, _ = run(pytester, "-p", "no:dynpool", stop)
    pooled, started = run(pytester, "--dynpool-workers", "3", stop)
    assert pooled.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    pooled.stdout.fnmatch_lines(["*stopping after * failures*"])
    # The three were in flight together, so all three fail. With -x nothing else
    # starts; with --maxfail=2 an item may start between the first and the second
    # failure being logged, as in plain pytest.
    first_items = [f"test_stop.py::test_{job}[0]" for job in "abc"]
    if stop == "-x":
        assert sorted(started) == first_items
    else:
        assert set(first_items) <= set(started)
    pooled.assert_outcomes(failed=3, passed=len(started) - 3)
    pooled.stdout.fnmatch_lines([f"not started: {12 - len(started)} pooled items*"])
    assert_started_items_reported(pooled, started)
