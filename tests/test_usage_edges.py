"""Usage that was silently wrong or an internal error (issue 11 items 13, 15, 16, 17)."""

from __future__ import annotations

import pytest

from tests.conftest import outcomes_by_nodeid

RECORD_JOBS = """
def pytest_dynpool_run_finished(config, stats):
    with open("jobs.txt", "w") as out:
        for job_stats in stats.jobs:
            job = job_stats.job
            out.write(f"{job.name} {job.cap} {job.rate.text if job.rate else None}\\n")
"""

THREE_JOBS = """
import pytest

@pytest.mark.dynpool(4, job="j")
def test_j():
    pass

@pytest.mark.dynpool(4, job="k")
def test_k():
    pass

@pytest.mark.dynpool(4, job="m")
def test_m():
    pass
"""


def test_ini_overrides_with_spaces_and_several_per_line_apply(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        dynpool_caps = j = 1
            k=2 m=3
        dynpool_rates = j=10/s, k=5/s
        """
    )
    pytester.makeconftest(RECORD_JOBS)
    pytester.makepyfile(test_three=THREE_JOBS)
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=3)
    assert "name no selected job" not in result.stdout.str()
    jobs = (pytester.path / "jobs.txt").read_text().splitlines()
    assert sorted(jobs) == ["j 1 10/s", "k 2 5/s", "m 3 None"]


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("dynpool_caps = j=2 junk", "*dynpool_caps: expected JOB=K*'j=2 junk'*"),
        ("dynpool_caps = j=2, k", "*dynpool_caps: expected JOB=K*'j=2, k'*"),
        ("dynpool_rates = j=10/s k", "*dynpool_rates: expected JOB=RATE*'j=10/s k'*"),
    ],
)
def test_ini_overrides_that_cannot_be_read_are_usage_errors(
    pytester: pytest.Pytester, ini: str, message: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_three=THREE_JOBS)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    "decorators",
    [
        "@pytest.mark.dynpool(2)\n@pytest.mark.dynpool(4)",
        "@pytest.mark.dynpool(2, job='a')\n@pytest.mark.dynpool(2, job='b')",
        "@pytest.mark.dynpool(2, timeout=1)\n@pytest.mark.dynpool(2)",
    ],
    ids=["caps", "jobs", "timeouts"],
)
def test_the_marker_twice_with_different_arguments_is_a_usage_error(
    pytester: pytest.Pytester, decorators: str
) -> None:
    pytester.makepyfile(
        test_twice=f"""
import pytest

{decorators}
def test_target():
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_twice.py::test_target: @pytest.mark.dynpool is applied twice with different*"]
    )


def test_the_marker_twice_on_a_param_with_different_caps_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_twice="""
import pytest

@pytest.mark.parametrize(
    "n", [pytest.param(1, marks=[pytest.mark.dynpool(1), pytest.mark.dynpool(3)])]
)
def test_target(n):
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*applied twice*dynpool(1)*dynpool(3)*"])


def test_the_same_marker_twice_is_fine(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RECORD_JOBS)
    pytester.makepyfile(
        test_twice="""
import pytest

@pytest.mark.dynpool(2, job="j")
@pytest.mark.dynpool(2, job="j")
def test_target():
    pass
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)
    assert (pytester.path / "jobs.txt").read_text() == "j 2 None\n"


@pytest.mark.parametrize("cap", ["0", "-1", "None", "'2'", "2.5", "True", "10**400"])
def test_a_hook_returning_a_bad_cap_is_a_usage_error(pytester: pytest.Pytester, cap: str) -> None:
    pytester.makeconftest(
        f"""
from pytest_dynpool import JobAssignment

def pytest_dynpool_job_for_item(item):
    return JobAssignment("j", {cap}, "conftest.py")
"""
    )
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*test_*.py::test_x: pytest_dynpool_job_for_item returned JobAssignment(*max_concurrency*"]
    )
    assert "Traceback" not in result.stderr.str()


def test_a_hook_returning_something_else_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
def pytest_dynpool_job_for_item(item):
    return {"name": "j", "max_concurrency": 2}
"""
    )
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*expected a JobAssignment or None, got dict*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("dynpool(10**400)", "*max_concurrency must be <= 1,000,000*"),
        ("dynpool(2, timeout=10**400)", "*timeout must be a finite number >= 0*"),
    ],
)
def test_huge_marker_numbers_are_usage_errors(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
import pytest

@pytest.mark.{marker}
def test_x():
    pass
"""
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_never_more_worker_threads_than_items(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import threading

seen = []

def pytest_unconfigure(config):
    with open("threads.txt", "w") as out:
        out.write(str(max(seen)))
"""
    )
    pytester.makepyfile(
        """
import threading
import pytest
from conftest import seen

@pytest.mark.dynpool(8)
@pytest.mark.parametrize("n", range(3))
def test_x(n):
    seen.append(sum(t.name.startswith("dynpool-worker-") for t in threading.enumerate()))
"""
    )
    pytester.runpytest("--dynpool-workers", "10000").assert_outcomes(passed=3)
    assert 1 <= int((pytester.path / "threads.txt").read_text()) <= 3


MARKED_SUITE = """
import pytest

@pytest.mark.dynpool(2)
@pytest.mark.parametrize("n", range(3))
def test_marked(n):
    assert n != 1

@pytest.mark.dynpool_alone
def test_alone():
    pass
"""


def test_strict_markers_with_the_pool_off_runs_as_with_it_on(pytester: pytest.Pytester) -> None:
    """``-p no:dynpool`` is how the README compares against plain pytest: it must run."""
    pytester.makepyfile(test_marked=MARKED_SUITE)
    off = pytester.runpytest("-p", "no:dynpool", "--strict-markers")
    on = pytester.runpytest("--strict-markers")
    assert off.ret == on.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes_by_nodeid(off) == outcomes_by_nodeid(on)
    off.assert_outcomes(passed=3, failed=1)


def test_no_unknown_mark_warning_with_the_pool_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=MARKED_SUITE)
    result = pytester.runpytest("-p", "no:dynpool", "-W", "error::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=3, failed=1)
