"""pytest-xdist beside other plugins: with ``-n`` dynpool runs on every worker; other
``--dist`` modes leave it off. The full xdist tests are ``tests/test_xdist.py``."""

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


def test_dash_n_keeps_dynpool_on_and_outcomes_are_right(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=SUITE)
    # A subprocess with a time limit: a hang fails the test instead of the CI job.
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly", timeout=120)
    result.stdout.fnmatch_lines(["dynpool: * workers per xdist worker*"])
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*= dynpool =*", "xdist: 2 workers*"])


def test_dist_loadscope_leaves_dynpool_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadscope", timeout=120)
    result.stdout.fnmatch_lines(["dynpool: off (--dist loadscope: *)"])
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.no_fnmatch_line("*= dynpool =*")
