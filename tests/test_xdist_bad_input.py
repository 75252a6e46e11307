"""Under ``pytest -n 2``: a bad marker is the same usage error (exit 4) as without -n.

The workers collect and build the plan; the controller never collects, so a
worker hands the error to it (workeroutput) and the controller ends the run
with it, instead of xdist's INTERNALERROR "no active workers".
"""

from __future__ import annotations

import pytest

from .test_bad_input import TABLE, write_suite

pytest.importorskip("xdist")

# Errors a worker finds while it builds the plan: in one marker, and across two files.
CASES = ['rate="10/h"', "k=0", "unknown keyword", "one job, two caps"]


def error_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stderr.lines if line.startswith("ERROR:")]


@pytest.mark.parametrize("name", CASES)
def test_a_bad_marker_under_xdist_is_the_usage_error_of_a_plain_run(
    pytester: pytest.Pytester, name: str
) -> None:
    case = TABLE[name]
    write_suite(pytester, case)
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider", *case.args, timeout=120)
    distributed = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", *case.args, timeout=120
    )
    for result in (plain, distributed):
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([case.message])
        output = result.stderr.str() + result.stdout.str()
        assert "INTERNALERROR" not in output
        assert "Traceback" not in output
    assert error_lines(distributed) == error_lines(plain)
    assert len(error_lines(distributed)) == 1
    assert not (pytester.path / "ran").exists(), "a test ran despite the usage error"
