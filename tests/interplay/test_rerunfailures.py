"""pytest-rerunfailures: when it may rerun anything, dynpool stays off and says so, so the
outcomes are exactly plain pytest's with reruns."""

from __future__ import annotations

import pytest

from ..conftest import outcomes_by_nodeid

pytest.importorskip("pytest_rerunfailures")

SUITE = """
import pathlib
import pytest

@pytest.fixture(scope="module")
def resource():
    yield 1

@pytest.mark.dynpool(2)
@pytest.mark.parametrize("n", range(4))
def test_n(n, resource):
    assert n != 3

@pytest.mark.dynpool(2)
{flaky}def test_flaky():
    marker = pathlib.Path("flaky-ran")
    if not marker.exists():
        marker.write_text("1")
        raise AssertionError("fails on its first run only")
"""


@pytest.mark.parametrize(
    ("flaky", "args", "reason"),
    [
        ("", ["--reruns", "2"], "pytest-rerunfailures reruns failed tests (--reruns)*"),
        (
            "@pytest.mark.flaky(reruns=2)\n",
            [],
            "pytest-rerunfailures may rerun 1 items marked flaky*",
        ),
    ],
    ids=["--reruns", "flaky-marker"],
)
def test_reruns_turn_dynpool_off_and_outcomes_are_plain(
    pytester: pytest.Pytester, flaky: str, args: list[str], reason: str
) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    dynpool: dynpool marker\n")
    pytester.makepyfile(test_r=SUITE.format(flaky=flaky))
    plain = pytester.runpytest("-p", "no:dynpool", "-p", "no:randomly", *args)
    (pytester.path / "flaky-ran").unlink()
    pooled = pytester.runpytest("-p", "no:randomly", "--dynpool-workers", "3", *args)
    pooled.stdout.fnmatch_lines([f"dynpool: off ({reason}"])
    assert pooled.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    assert pooled.parseoutcomes() == plain.parseoutcomes()
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    assert pooled.parseoutcomes()["rerun"] >= 1


def test_without_reruns_the_pool_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_r=SUITE.format(flaky=""))
    result = pytester.runpytest("-p", "no:randomly", "--dynpool-workers", "3")
    result.stdout.fnmatch_lines(["*= dynpool =*"])
    result.assert_outcomes(passed=3, failed=2)
