"""The summary's arithmetic, the run-finished hook, and the pytest version gate."""

from __future__ import annotations

import pytest

from pytest_dynpool.bounds import Bound
from pytest_dynpool.jobs import Job
from pytest_dynpool.pytest_compat import check_pytest_version
from pytest_dynpool.summary import JobStats, Outcome, RunStats, format_summary


def test_summary_rows_and_pool_line() -> None:
    job = Job(name="api", cap=2, declared_cap=3, declared_at="test_api.py")
    stats = RunStats(workers=4, jobs=[JobStats(job, items=4, peak_in_flight=2)])
    for n in range(4):
        stats.jobs[0].record(f"test_api.py::test_{n}", 1.0)
    for outcome in (Outcome.PASSED, Outcome.PASSED, Outcome.FAILED, Outcome.SKIPPED):
        stats.jobs[0].count(outcome)
    stats.pool_wall_seconds = 2.2
    stats.pool_peak_in_flight = 2
    lines = format_summary(stats)
    assert lines[1].split() == ["api", "2", "(declared", "3)", "4", "2", "1", "1", "2", "4.00"]
    assert lines[2] == (
        "pool: 4 workers, peak 2 in flight, wall 2.20s, lower bound 2.00s "
        "(bounded by job api's cap), wall/LB 1.10"
    )


def test_summary_uses_the_time_weighted_cap_of_an_adaptive_job() -> None:
    job = Job(name="api", cap=4, declared_cap=4, declared_at="test_api.py", adaptive=True)
    stats = RunStats(workers=8, jobs=[JobStats(job, items=4, mean_cap=2.0)])
    for n in range(4):
        stats.jobs[0].record(f"test_api.py::test_{n}", 1.0)
    stats.pool_wall_seconds = 2.2
    assert stats.bound() == Bound(2.0, "cap", "api")  # 4 s of work at 2 on average
    assert stats.bound().reason == "job api's cap"
    assert "lower bound 2.00s (bounded by job api's cap), wall/LB 1.10" in format_summary(stats)[2]


def test_summary_names_the_longest_item_when_it_bounds_the_run() -> None:
    job = Job(name="api", cap=4, declared_cap=4, declared_at="test_api.py")
    stats = RunStats(workers=4, jobs=[JobStats(job, items=3)])
    for node_id, seconds in (("t.py::a", 0.1), ("t.py::slow", 3.0), ("t.py::b", 0.1)):
        stats.jobs[0].record(node_id, seconds)
    stats.pool_wall_seconds = 3.0
    assert "(bounded by one item (t.py::slow)), wall/LB 1.00" in format_summary(stats)[2]
    assert stats.item_seconds() == {"t.py::a": 0.1, "t.py::slow": 3.0, "t.py::b": 0.1}


def test_run_finished_hook_sees_the_figures(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_dynpool_run_finished(config, stats):
            print(f"\\nFIGURES {stats.workers} {[j.items for j in stats.jobs]} "
                  f"{stats.pool_peak_in_flight}")
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dynpool(1)
        @pytest.mark.parametrize("n", range(3))
        def test_n(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2", "-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["FIGURES 2 [[]3[]] 1"])


@pytest.mark.parametrize("version", ["8.3.5", "7.4.0", "10.0.0", "11.1"])
def test_unsupported_pytest_versions_are_refused(version: str) -> None:
    with pytest.raises(pytest.UsageError, match=f"found pytest {version}"):
        check_pytest_version(version)


@pytest.mark.parametrize("version", ["8.4.0", "8.4.2", "9.0.0", "9.2.0", "9.3.0.dev12+g1234"])
def test_supported_pytest_versions_pass(version: str) -> None:
    check_pytest_version(version)


def test_current_test_variable_survives_threads_setting_and_unsetting_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.environ.pop(key, None) is not atomic: two threads may both find the key."""
    import threading

    from pytest_dynpool.runtime.thread_safety import _update_current_test_var

    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    item = pytester.getitem("def test_func(): pass")
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(20_000):
                _update_current_test_var(item, "call")
                _update_current_test_var(item, None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_summary_shows_xfail_subtest_and_interrupt_columns_only_when_counted() -> None:
    job = Job(name="api", cap=2, declared_cap=2, declared_at="test_api.py")
    stats = RunStats(workers=2, jobs=[JobStats(job, items=4, peak_in_flight=2)])
    for outcome in (Outcome.PASSED, Outcome.XFAILED, Outcome.XFAILED, Outcome.INTERRUPTED):
        stats.jobs[0].count(outcome)
    stats.jobs[0].subtests_failed = 3
    header, row = format_summary(stats)[:2]
    assert header.split() == [
        "job", "cap", "items", "passed", "failed", "skipped",
        "xfailed", "subfailed", "interrupted", "peak", "busy",
        "s",
    ]  # fmt: skip
    assert row.split()[3:9] == ["1", "0", "0", "2", "3", "1"]
