"""The JSON report, the step summary and their options (the HTML page: test_html_report.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_dynpool.reports.json_report import schema
from pytest_dynpool.reports.record import (
    CapChange,
    HttpJobRecord,
    ItemRecord,
    JobRecord,
    RunRecord,
    merge_records,
)

REPO = Path(__file__).resolve().parent.parent


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(document, schema())
    return document


def test_example_suite_report_validates_against_the_documented_schema(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "conftest_example", "--dynpool-workers", "4",
         f"--dynpool-report={report}", "-p", "no:cacheprovider", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    document = load(report)
    run, jobs, items = document["run"], document["jobs"], document["items"]
    assert document["schema_version"] == 1
    assert run["workers"] == 4
    assert run["exit_status"] == 0
    assert not run["interrupted"]
    assert len(items) == 62
    assert {item["outcome"] for item in items} == {"passed"}
    by_job = {job["name"]: job for job in jobs}
    for name, job in by_job.items():
        mine = [item for item in items if item["job"] == name]
        assert len(mine) == job["items"] == job["outcomes"]["passed"]
        assert {item["worker"] for item in mine} <= {f"dynpool-worker-{n}" for n in range(4)}
        assert 1 <= job["peak_in_flight"] <= min(job["cap"], 4)
    alone = [item for item in items if item["job"] is None]
    assert len(alone) == 2
    assert {item["worker"] for item in alone} == {"MainThread"}
    assert all(0 <= item["start"] <= item["end"] <= run["wall_seconds"] for item in items)
    bounds = [job["bound_seconds"] for job in jobs]
    assert bounds == sorted(bounds, reverse=True)  # the job that held the run back most first
    if run["bounded_by"]["term"] in ("cap", "rate"):
        assert run["bounded_by"]["job"] == jobs[0]["name"]
    else:
        assert run["bounded_by"]["job"] is None
    http = {traffic["job"]: traffic for traffic in document["http"]}
    assert set(http) == {"inventory", "quotes", "reports"}  # the jobs that use dynpool_client
    inventory = http["inventory"]
    assert inventory["requests"] == sum(inventory["status_classes"].values())
    assert len(inventory["overloaded_at"]) == inventory["overloaded"]
    caps = [change["cap"] for change in inventory["cap_changes"]]
    assert caps[-1:] in ([], [inventory["effective_cap"]])
    assert by_job["inventory"]["effective_cap"] == inventory["effective_cap"]


def test_the_schema_rejects_what_it_should() -> None:
    """The schema is no rubber stamp: a report without items or with a bad outcome fails."""
    record = RunRecord(workers=2, backend="memory", started_at="2026-01-01T00:00:00+00:00")
    record.items.append(ItemRecord("t.py::test", "job", phases={"call": "passed"}))
    from pytest_dynpool.reports.json_report import report_document

    good = report_document(record)
    jsonschema.validate(good, schema())
    for broken in (
        {key: value for key, value in good.items() if key != "items"},
        {**good, "items": [{**good["items"][0], "outcome": "fine"}]},
        {**good, "schema_version": 2},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema())


SUITE = """
import threading

import pytest

both_in_flight = threading.Barrier(2, timeout=60)


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown")


@pytest.mark.dynpool(2, job="pair")
@pytest.mark.parametrize("n", [0, 1])
def test_pair(n, request):
    if request.config.pluginmanager.has_plugin("dynpool"):  # plain pytest runs one at a time
        both_in_flight.wait()


@pytest.mark.dynpool(3, job="mixed")
class TestMixed:
    def test_fails(self):
        assert False

    @pytest.fixture
    def broken_setup(self):
        raise RuntimeError("setup")

    def test_setup_error(self, broken_setup):
        pass

    def test_teardown_error(self, broken_teardown):
        pass

    def test_skip(self):
        pytest.skip("no")

    @pytest.mark.xfail(strict=False)
    def test_xfail(self):
        assert False

    @pytest.mark.xfail(strict=False)
    def test_xpass(self):
        pass


def test_alone():
    pass
"""

EXPECTED = {
    "test_suite.py::test_pair[0]": "passed",
    "test_suite.py::test_pair[1]": "passed",
    "test_suite.py::TestMixed::test_fails": "failed",
    "test_suite.py::TestMixed::test_setup_error": "error",
    "test_suite.py::TestMixed::test_teardown_error": "error",
    "test_suite.py::TestMixed::test_skip": "skipped",
    "test_suite.py::TestMixed::test_xfail": "xfailed",
    "test_suite.py::TestMixed::test_xpass": "xpassed",
    "test_suite.py::test_alone": "passed",
}


def test_item_outcomes_workers_and_overlap(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "out" / "report.json"  # the directory is made
    result = pytester.runpytest_subprocess("--dynpool-workers", "3", f"--dynpool-report={report}")
    assert result.ret == 1
    items = {item["nodeid"]: item for item in load(report)["items"]}
    assert {nodeid: item["outcome"] for nodeid, item in items.items()} == EXPECTED
    # Each phase's outcome as plain pytest reports it.
    plain = pytester.inline_run("-p", "no:dynpool", "-W", "ignore::pytest.PytestUnknownMarkWarning")
    plain_phases: dict[str, dict[str, str]] = {}
    for plain_report in plain.getreports("pytest_runtest_logreport"):
        plain_phases.setdefault(plain_report.nodeid, {})[plain_report.when] = plain_report.outcome
    assert {nodeid: item["phases"] for nodeid, item in items.items()} == plain_phases
    teardown = items["test_suite.py::TestMixed::test_teardown_error"]["phases"]
    assert teardown == {"setup": "passed", "call": "passed", "teardown": "failed"}
    # The barrier held both items of "pair" in flight at once: their intervals overlap,
    # on two different worker threads.
    first, second = items["test_suite.py::test_pair[0]"], items["test_suite.py::test_pair[1]"]
    assert first["worker"] != second["worker"]
    assert max(first["start"], second["start"]) < min(first["end"], second["end"])
    assert items["test_suite.py::test_alone"]["worker"] == "MainThread"
    result.stdout.fnmatch_lines([f"dynpool: report written to {report}"])


STOPPING_SUITE = """
import threading
import time

import pytest

started = threading.Event()


@pytest.mark.dynpool(1, job="first")
def test_first():
    pass


@pytest.mark.dynpool(1, job="stopper")
def test_stop():
    {stop}


@pytest.mark.dynpool(1, job="stopper")
def test_after_stop():
    pass
"""


@pytest.mark.parametrize(
    ("stop", "exit_status", "interrupted"),
    [
        ("pytest.exit('enough', returncode=3)", 3, True),
        ("raise KeyboardInterrupt", 2, True),
        ("assert False", 1, False),
    ],
)
def test_report_is_written_when_the_run_ends_early(
    pytester: pytest.Pytester, stop: str, exit_status: int, interrupted: bool
) -> None:
    pytester.makepyfile(test_stopping=STOPPING_SUITE.format(stop=stop))
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--dynpool-workers", "1", "-x", f"--dynpool-report={report}"
    )
    assert result.ret == exit_status
    document = load(report)
    assert document["run"]["exit_status"] == exit_status
    assert document["run"]["interrupted"] is interrupted
    items = {item["nodeid"]: item for item in document["items"]}
    stopped = items["test_stopping.py::test_stop"]
    assert stopped["outcome"] == ("interrupted" if interrupted else "failed")
    assert stopped["phases"]["setup"] == "passed"
    assert ("call" in stopped["phases"]) is not interrupted
    assert "test_stopping.py::test_after_stop" not in items  # never started
    assert document["run"]["not_started"] >= 1


def test_report_marks_timed_out_items(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_hang="""
        import threading

        import pytest

        never = threading.Event()


        @pytest.mark.dynpool(2, job="slow", timeout=0.5)
        def test_hangs():
            never.wait(60)


        @pytest.mark.dynpool(2, job="slow")
        def test_quick():
            pass
        """
    )
    report = pytester.path / "report.json"
    html = pytester.path / "timeline.html"
    result = pytester.runpytest_subprocess(
        "--dynpool-workers", "2", f"--dynpool-report={report}", f"--dynpool-html={html}"
    )
    assert result.ret == 1
    document = load(report)
    hung = next(item for item in document["items"] if item["nodeid"] == "test_hang.py::test_hangs")
    assert hung["timed_out"] is True
    assert hung["outcome"] == "failed"
    assert hung["worker"].startswith("dynpool-worker-")
    assert hung["end"] - hung["start"] == pytest.approx(0.5, abs=1e-3)  # its timeout, not a clock
    assert document["run"]["timed_out"] == ["test_hang.py::test_hangs"]
    assert "test_hang.py::test_hangs" in html.read_text(encoding="utf-8")


def test_merge_records_of_two_processes() -> None:
    """The seam for pytest-xdist: each process records its own items; one report of all."""

    def job(items: int, peak: int, busy: float) -> JobRecord:
        return JobRecord(
            name="api", declared_at="t.py", cap=2, declared_cap=2, rate=None,
            declared_rate=None, adaptive=True, items=items, outcomes={"passed": items},
            peak_in_flight=peak, busy_seconds=busy, bound_seconds=busy / 2,
            effective_cap=2, min_effective_cap=2,
        )  # fmt: skip

    def traffic(requests: int, p95: float, at: float) -> HttpJobRecord:
        return HttpJobRecord(
            job="api", requests=requests, status_classes={"2xx": requests}, overloaded=1,
            retries=0, errors=0, latency_p50=p95 / 2, latency_p95=p95, latency_p99=p95,
            effective_cap=2, min_effective_cap=1, cap_changes=[CapChange(at, 1)],
            overloaded_at=[at],
        )  # fmt: skip

    records = []
    for process, (items, peak, busy, wall, at) in {
        "gw0": (3, 2, 1.5, 4.0, 0.7),
        "gw1": (2, 1, 0.5, 5.0, 0.2),
    }.items():
        record = RunRecord(workers=2, backend="memory", started_at="x", wall_seconds=wall)
        record.processes = [process]
        record.items = [ItemRecord(f"t.py::test[{process}-{n}]", "api", process=process)
                        for n in range(items)]  # fmt: skip
        record.jobs = [job(items, peak, busy)]
        record.http = [traffic(items * 10, busy, at)]
        record.not_started = 1
        records.append(record)
    merged = merge_records(records)
    assert merged.processes == ["gw0", "gw1"]
    assert len(merged.items) == 5
    assert merged.wall_seconds == 5.0
    assert merged.not_started == 2
    (api,) = merged.jobs
    assert (api.items, api.peak_in_flight, api.busy_seconds) == (5, 2, 2.0)
    assert api.outcomes == {"passed": 5}
    (http,) = merged.http
    assert (http.requests, http.overloaded, http.latency_p95) == (50, 2, 1.5)
    assert [change.at for change in http.cap_changes] == [0.2, 0.7]
    assert records[0].items
    assert len(records[0].items) == 3
    with pytest.raises(ValueError, match="at least one"):
        merge_records([])


def test_report_names_the_limits_store(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_store="""
        import pytest

        @pytest.mark.dynpool(2, job="api")
        @pytest.mark.parametrize("n", range(3))
        def test_n(n):
            pass
        """
    )
    report = pytester.path / "report.json"
    store = pytester.path / "limits.db"
    result = pytester.runpytest_subprocess(
        f"--dynpool-backend=sqlite:///{store}",
        "--dynpool-namespace=ci-7",
        f"--dynpool-report={report}",
    )
    assert result.ret == 0
    run = load(report)["run"]
    assert (run["backend"], run["namespace"]) == (f"sqlite:///{store}", "ci-7")
    default = pytester.runpytest_subprocess(f"--dynpool-report={report}")
    assert default.ret == 0
    assert load(report)["run"]["backend"] == "memory"
