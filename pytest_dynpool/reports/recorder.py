"""Records a run for the reports, from hooks on the main thread, and writes them at the end.

Registered only when a report is asked for. It learns everything from hooks:
``pytest_runtest_logreport`` (phases, times; also for items pytest runs
itself), ``pytest_dynpool_item_finished`` (the worker thread of pooled items),
``pytest_dynpool_run_finished`` (jobs, peaks, the lower bound) and
``pytest_dynpool_report_http`` (the HTTP figures), so the runtime needs no
knowledge of reports.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path

import pytest

from .. import clock
from ..backends import redact
from ..bounds import JOB_TERMS, job_bound
from ..jobs import ITEM_JOB_KEY, UNMARKED_EXCLUSIVE_JOB
from ..limits_store import STORE_SETTINGS_KEY
from ..pytest_compat import is_xdist_worker, xdist_worker_of
from ..summary import JobStats, Outcome, RunStats
from .github_summary import append_step_summary
from .html_report import render_html
from .json_report import render_json
from .options import ReportSettings
from .record import PHASES, HttpJobRecord, ItemRecord, JobRecord, RunRecord

REPORTS_PLUGIN = "dynpool-reports"
_WORST_FIRST = {"failed": 2, "skipped": 1, "passed": 0}


class RunRecorder:
    """Collects one run's records; a pytest plugin object (``config.pluginmanager``)."""

    def __init__(self, config: pytest.Config, settings: ReportSettings, workers: int) -> None:
        self.config = config
        self.settings = settings
        self.workers = workers
        self._restart_clocks()  # again when the run loop starts: the run's start
        self.ended_perf: float | None = None
        self.job_of: dict[str, str | None] = {}
        self.items: dict[str, ItemRecord] = {}
        self.stats: RunStats | None = None
        self.interrupted = False
        self.written: list[str] = []
        self.errors: list[str] = []

    def _restart_clocks(self) -> None:
        # The run's start on three clocks: report times, perf_counter, HTTP (monotonic).
        self.started_at = clock.utc_now()
        self.base_epoch = clock.wall_time()
        self.base_perf = clock.perf_counter()
        self.base_monotonic = clock.monotonic()

    @pytest.hookimpl(trylast=True)  # after the core plugin put every item into its job
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            job = item.stash.get(ITEM_JOB_KEY, None)
            self.job_of[item.nodeid] = None if job in (None, UNMARKED_EXCLUSIVE_JOB) else job.name

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        self._restart_clocks()
        try:
            return (yield)
        finally:
            self.ended_perf = clock.perf_counter()

    def _item(self, nodeid: str, process: str | None = None) -> ItemRecord:
        record = self.items.get(nodeid)
        if record is None:
            record = ItemRecord(nodeid, self.job_of.get(nodeid), process=process)
            self.items[nodeid] = record
        return record

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in PHASES:
            return
        record = self._item(report.nodeid, xdist_worker_of(report))
        first = not record.phases
        previous = record.phases.get(report.when)
        if previous is None or _WORST_FIRST[report.outcome] > _WORST_FIRST[previous]:
            record.phases[report.when] = report.outcome
        if hasattr(report, "wasxfail"):
            record.xfail = True
        if report.start and not record.timed_out:
            start = report.start - self.base_epoch
            record.start = start if first else min(record.start, start)
            record.end = max(record.end, report.stop - self.base_epoch)

    def pytest_dynpool_item_finished(
        self, item: pytest.Item, worker: str, started: float, ended: float, timed_out: bool
    ) -> None:
        record = self._item(item.nodeid)
        record.worker = worker
        record.start = started - self.base_perf
        record.end = ended - self.base_perf
        record.timed_out = timed_out

    def pytest_keyboard_interrupt(self) -> None:
        """Ctrl-C, ``KeyboardInterrupt`` or ``pytest.exit()`` ended the run (any exit code)."""
        self.interrupted = True

    def pytest_dynpool_run_finished(self, config: pytest.Config, stats: RunStats) -> None:
        self.stats = stats

    @pytest.hookimpl(trylast=True)  # after pytest's own session teardown: the last reports
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        record = self.record(int(exitstatus))
        for path, write in (
            (self.settings.json_path, render_json),
            (self.settings.html_path, render_html),
        ):
            if path is not None:
                self._write(path, write, record)
        if self.stats is not None and self.settings.step_summary_path is not None:
            try:
                append_step_summary(self.settings.step_summary_path, self.stats)
            except OSError as error:
                self.errors.append(f"could not append to $GITHUB_STEP_SUMMARY: {error}")

    def _write(self, path: Path, render: Callable[[RunRecord], str], record: RunRecord) -> None:
        """A temporary file first, renamed: a reader never sees half a report."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_text(render(record), encoding="utf-8")
            partial.replace(path)
        except OSError as error:
            self.errors.append(f"could not write {path}: {error}")
        else:
            self.written.append(str(path))

    @pytest.hookimpl(trylast=True)  # under every other section
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for path in self.written:
            terminalreporter.write_line(f"dynpool: report written to {path}")
        for error in self.errors:
            terminalreporter.write_line(f"dynpool: {error}", red=True)

    def record(self, exit_status: int | None = None) -> RunRecord:
        """The run as recorded so far."""
        ended = self.ended_perf if self.ended_perf is not None else clock.perf_counter()
        store = self.config.stash.get(STORE_SETTINGS_KEY, None)
        record = RunRecord(
            workers=self.workers,
            backend=redact(store.url) if store is not None else "memory",
            namespace=store.namespace if store is not None else None,
            started_at=self.started_at.isoformat(timespec="milliseconds"),
            wall_seconds=ended - self.base_perf,
            exit_status=exit_status,
            interrupted=self.interrupted,
            items=list(self.items.values()),
            processes=sorted({item.process for item in self.items.values() if item.process}),
        )
        stats = self.stats
        hook = self.config.hook
        http: list[HttpJobRecord] = [
            traffic
            for records in hook.pytest_dynpool_report_http(
                config=self.config, run_started=self.base_monotonic
            )
            for traffic in records or ()
        ]
        record.http = http
        if stats is None:
            return record
        bound = stats.bound()
        record.pool_wall_seconds = stats.pool_wall_seconds
        record.lower_bound_seconds = bound.seconds
        record.bounded_by = bound.term
        record.session_teardown_seconds = bound.then
        if bound.term in JOB_TERMS:
            record.bounding_job = bound.subject
        record.peak_in_flight = stats.pool_peak_in_flight
        record.not_started = stats.not_started
        record.timed_out = list(stats.timed_out)
        record.threads_left_behind = stats.threads_left_behind
        traffic_of = {traffic.job: traffic for traffic in http}
        for job_stats in stats.jobs:
            job = job_stats.job
            traffic = traffic_of.get(job.name)
            record.jobs.append(
                JobRecord(
                    name=job.name,
                    declared_at=job.declared_at,
                    cap=job.cap,
                    declared_cap=job.declared_cap,
                    rate=None if job.rate is None else str(job.rate),
                    declared_rate=None if job.declared_rate is None else str(job.declared_rate),
                    adaptive=job.adaptive,
                    items=job_stats.items,
                    outcomes={
                        outcome.value: job_stats.outcomes.get(outcome, 0) for outcome in Outcome
                    },
                    peak_in_flight=job_stats.peak_in_flight,
                    busy_seconds=job_stats.busy_seconds,
                    bound_seconds=_own_bound(job_stats, stats.workers),
                    effective_cap=job.cap if traffic is None else traffic.effective_cap,
                    min_effective_cap=job.cap if traffic is None else traffic.min_effective_cap,
                )
            )
        return record


def register_recorder(config: pytest.Config, settings: ReportSettings, workers: int) -> None:
    """Record this run for its reports; not in an xdist worker: its controller writes them."""
    if not is_xdist_worker(config):
        config.pluginmanager.register(RunRecorder(config, settings, workers), REPORTS_PLUGIN)


def _own_bound(job_stats: JobStats, workers: int) -> float:
    """The job's own term of the lower bound (its cap or its rate): how far it held the run."""
    bound = job_bound(job_stats.work(workers))
    return 0.0 if bound is None else bound.seconds
