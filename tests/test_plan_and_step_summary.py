"""``--dynpool-plan``, the GitHub step summary, and the report options' ini keys and errors."""

from __future__ import annotations

import json

import pytest

from pytest_dynpool.jobs import Job
from pytest_dynpool.reports.github_summary import step_summary_markdown
from pytest_dynpool.summary import JobStats, Outcome, RunStats

SUITE = """
import pytest


@pytest.fixture(scope="session", autouse=True)
def must_not_run(tmp_path_factory):
    open("fixture-ran", "w").close()


@pytest.mark.dynpool(4, job="search", rate="10/s")
@pytest.mark.parametrize("n", range(3))
def test_search(n):
    open(f"ran-{n}", "w").close()


@pytest.mark.dynpool(max_concurrency=8, job="inventory", adaptive=True)
def test_stock():
    pass


@pytest.mark.dynpool(1)
class TestLegacy:
    def test_a(self):
        pass

    def test_b(self):
        pass


def test_alone():
    pass
"""


@pytest.mark.parametrize("verbosity", [[], ["-q"], ["-qq"], ["-v"]])
def test_plan_prints_every_job_and_runs_nothing(
    pytester: pytest.Pytester, verbosity: list[str]
) -> None:
    pytester.makepyfile(test_plan=SUITE)
    result = pytester.runpytest(
        "--dynpool-plan", "--dynpool-workers", "4", "--dynpool-cap", "search=2", *verbosity
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "dynpool plan: 3 jobs, 6 pooled items on 4 workers; 1 exclusive items run alone*",
            "job*cap*rate*adaptive*items*declared at",
            "search*2 (declared 4)*10/s*no*3*test_plan.py::test_search",
            "inventory*8 (pool bounds it to 4)*-*yes*1*test_plan.py::test_stock",
            "test_plan.py::TestLegacy*1*-*no*2*test_plan.py::TestLegacy",
        ]
    )
    assert not list(pytester.path.glob("ran-*"))
    assert not (pytester.path / "fixture-ran").exists()
    assert not result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]


def test_plan_from_the_ini_key_and_without_pooled_jobs(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ndynpool_plan = true\n")
    pytester.makepyfile(test_plain="def test_one():\n    open('ran', 'w').close()\n")
    result = pytester.runpytest()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["dynpool plan: no pooled job; all 1 items run as plain pytest"])
    assert not (pytester.path / "ran").exists()


def test_plan_says_when_the_pool_stays_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plan=SUITE)
    result = pytester.runpytest("--dynpool-plan", "--pdb")
    result.stdout.fnmatch_lines(["dynpool plan: off (--pdb/--trace: every test runs alone)*"])
    assert not list(pytester.path.glob("ran-*"))


def test_plan_keeps_pytests_collection_error_exit(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken="import no_such_module_here\n", test_plan=SUITE)
    result = pytester.runpytest("--dynpool-plan")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*1 error during collection*"])


def test_step_summary_is_appended(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = pytester.path / "step_summary.md"
    summary.write_text("## earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_plan=SUITE)
    result = pytester.runpytest_subprocess("--dynpool-workers", "4")
    assert result.ret == 0
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## earlier step\n### dynpool\n")
    assert "| job | cap | items | passed | failed | skipped | peak | busy s |" in text
    assert "| search | 4, rate 10/s | 3 | 3 | 0 | 0 |" in text
    assert "| test&#95;plan.py::TestLegacy | 1 | 2 | 2 | 0 | 0 |" in text
    assert "pool: 4 workers, peak " in text


def test_step_summary_keeps_a_job_name_as_text() -> None:
    job = Job("a|b <i>x</i> `y`", 2, 2, "conftest.py")
    stats = RunStats(workers=2, jobs=[JobStats(job, items=1, outcomes={Outcome.PASSED: 1})])
    markdown = step_summary_markdown(stats)
    row = markdown.splitlines()[4]
    assert row.startswith("| a&#124;b &#60;i&#62;x&#60;/i&#62; &#96;y&#96; | 2 | 1 | 1 |")
    assert row.count("|") == 9  # the name's own bar does not split the row


def test_report_paths_from_ini_are_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ndynpool_report = reports/run.json\ndynpool_html = run.html\n")
    pytester.makepyfile(test_plan=SUITE)
    sub = pytester.mkdir("elsewhere")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(sub)
        result = pytester.runpytest_subprocess("--rootdir", str(pytester.path), str(pytester.path))
    assert result.ret == 0
    document = json.loads((pytester.path / "reports" / "run.json").read_text(encoding="utf-8"))
    assert len(document["items"]) == 7
    assert (pytester.path / "run.html").exists()
    # The flag wins over the ini key, relative to the current directory.
    result = pytester.runpytest_subprocess("--dynpool-report=flag.json")
    assert (pytester.path / "flag.json").exists()


@pytest.mark.parametrize("flag", ["--dynpool-report", "--dynpool-html"])
def test_a_directory_as_report_path_is_a_usage_error(pytester: pytest.Pytester, flag: str) -> None:
    pytester.makepyfile(test_plan=SUITE)
    pytester.mkdir("out")
    result = pytester.runpytest(f"{flag}=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{flag} / *: 'out' is a directory; give the path of the file*"])
    assert not list(pytester.path.glob("ran-*"))


def test_unwritable_report_path_is_said_and_the_run_keeps_its_exit_code(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_plan=SUITE)
    (pytester.path / "blocker").write_text("a file, not a directory", encoding="utf-8")
    result = pytester.runpytest_subprocess("--dynpool-report=blocker/report.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["dynpool: could not write *blocker/report.json: *"])
