"""pytest-xdist: with ``-n`` the plugin turns itself off, says so, and the run is xdist's."""

from __future__ import annotations

import pytest

pytest.importorskip("xdist")

SUITE = """
import pytest

@pytest.fixture(scope="module")
def resource():
    yield 1

@pytest.mark.dynpool(2)
@pytest.mark.parametrize("n", range(6))
def test_n(n, resource):
    assert n != 3

def test_unmarked():
    pass
"""


def test_dash_n_turns_dynpool_off_and_outcomes_are_right(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=SUITE)
    # A subprocess with a time limit: a hang fails the test instead of the CI job.
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly", timeout=120)
    result.stdout.fnmatch_lines(["dynpool: off (pytest-xdist is active (-n); markers are ignored)"])
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.no_fnmatch_line("*= dynpool =*")
