"""Issue 11, item 14: ``unmarked`` is the built-in job of unmarked tests; no other may take it.

Before, a job named ``unmarked`` shared its HTTP limits with the unmarked tests
(cap 1) while the scheduler dispatched it at its own cap: the two disagreed.
"""

from __future__ import annotations

import pytest

SUITE = """
import pytest

@pytest.mark.dynpool(3, job="unmarked")
def test_named_unmarked(dynpool_job):
    open("ran", "w").close()

def test_really_unmarked(dynpool_job):
    open("ran", "w").close()
"""


@pytest.mark.parametrize("unmarked", ["exclusive", "pool"])
def test_a_marker_naming_its_job_unmarked_is_a_usage_error(
    pytester: pytest.Pytester, unmarked: str
) -> None:
    pytester.makepyfile(test_clash=SUITE)
    result = pytester.runpytest(f"--dynpool-unmarked={unmarked}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_clash.py::test_named_unmarked: invalid @pytest.mark.dynpool(3, "
            "job='unmarked'): the job name 'unmarked' is reserved for the tests without a "
            "dynpool marker; *"
        ]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / "ran").exists()


def test_a_hook_putting_items_into_a_job_named_unmarked_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        from pytest_dynpool import JobAssignment

        def pytest_dynpool_job_for_item(item):
            if item.name == "test_by_hook":
                return JobAssignment("unmarked", 4, "conftest.py")
            return None
        """
    )
    pytester.makepyfile(
        test_clash="""
        def test_by_hook(dynpool_job):
            open("ran", "w").close()

        def test_alone(dynpool_job):
            open("ran", "w").close()
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_clash.py::test_by_hook: dynpool job name 'unmarked' (declared at "
            "conftest.py) is reserved for the tests without a dynpool marker; *"
        ]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / "ran").exists()


def test_with_the_pool_off_the_fixture_names_the_clash(pytester: pytest.Pytester) -> None:
    # Only the HTTP fixtures are loaded: the job comes from the marker when a test asks.
    pytester.makepyfile(test_clash=SUITE)
    result = pytester.runpytest("-p", "no:dynpool", "-p", "pytest_dynpool.fixtures")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the job name 'unmarked' is reserved*"])
