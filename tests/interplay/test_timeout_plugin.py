"""pytest-timeout beside the pool: passing and failing outcomes stay plain pytest's.

Its ``signal`` method only works on the main thread; pytest-timeout itself falls
back to its ``thread`` method on other threads, which on a timeout dumps the
stacks and ends the whole process (that is pytest-timeout's design). For a
per-test timeout that fails only the test and lets the run go on, use
``--dynpool-timeout`` or ``dynpool(timeout=...)``.
"""

from __future__ import annotations

import pytest

from ..conftest import assert_no_worker_left, outcomes_by_nodeid

pytest.importorskip("pytest_timeout")

SUITE = """
import pytest

@pytest.fixture(scope="module")
def resource():
    yield 1

@pytest.mark.dynpool(3)
@pytest.mark.parametrize("n", range(6))
def test_n(n, resource):
    assert n % 3

@pytest.mark.timeout(30)
@pytest.mark.dynpool(3)
def test_with_marker():
    pass
"""


@pytest.mark.parametrize("method", ["signal", "thread"])
def test_outcomes_with_pytest_timeout(pytester: pytest.Pytester, method: str) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    dynpool: dynpool marker\n")
    pytester.makepyfile(test_t=SUITE)
    args = ("-p", "no:randomly", "--timeout", "30", f"--timeout-method={method}")
    plain = pytester.runpytest("-p", "no:dynpool", *args)
    pooled = pytester.runpytest(*args, "--dynpool-workers", "3")
    assert_no_worker_left()
    pooled.stdout.fnmatch_lines(["*= dynpool =*"])
    assert pooled.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    pooled.assert_outcomes(passed=5, failed=2)
