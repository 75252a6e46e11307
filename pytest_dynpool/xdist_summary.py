"""The controller's dynpool summary under ``-n``, when the workers' own figures fall short.

Two things only the controller can add. The limits store saw every lease of the
run, so its peak per job is what was in flight at once over all workers
(``apply_store_peaks``). And when the run is interrupted (Ctrl-C reaches the
controller), workers are torn down before they send their figures: the table
is then built from the reports the controller received (``stats_from_reports``),
as one process shows what ran before its KeyboardInterrupt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .model import Job, Rate
from .summary import JobStats, Outcome, RunStats, worse
from .xdist_channel import NO_JOB, CollectedPlan, JobRecord


@dataclass
class ReportedItems:
    """What reached the controller of each item: started, its outcome, its seconds."""

    started: set[str] = field(default_factory=set)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    subtests_failed: dict[str, int] = field(default_factory=dict)

    def add(
        self, nodeid: str, outcome: Outcome | None, subtest_failed: bool, seconds: float
    ) -> None:
        """One report, counted as the terminal counted it (``outcome``, from its category)."""
        self.started.add(nodeid)
        if outcome is not None:
            self.outcomes[nodeid] = worse(self.outcomes.get(nodeid), outcome)
        if subtest_failed:
            self.subtests_failed[nodeid] = self.subtests_failed.get(nodeid, 0) + 1
        self.seconds[nodeid] = self.seconds.get(nodeid, 0.0) + seconds


def _job(record: JobRecord) -> Job:
    per_second = record.rate_per_second
    rate = None if per_second is None else Rate(per_second, 1.0, f"{per_second:g}/s")
    return Job(record.name, record.cap, record.cap, "xdist plan", rate=rate, declared_rate=rate)


def stats_from_reports(
    plan: CollectedPlan, collection: Sequence[str], reported: ReportedItems, workers: int
) -> RunStats:
    """The run's figures from the controller's reports alone (no wall time, no peaks).

    An item that started but has no outcome counts as interrupted, one that never
    started as not started, as in one process.
    """
    jobs = [JobStats(_job(record)) for record in plan.jobs]
    stats = RunStats(workers=workers, jobs=jobs)
    for nodeid, job_index in zip(collection, plan.job_of_item, strict=True):
        if job_index == NO_JOB:
            stats.exclusive_items += 1
            continue
        job_stats = jobs[job_index]
        job_stats.items += 1
        if nodeid not in reported.started:
            stats.not_started += 1
            continue
        job_stats.count(reported.outcomes.get(nodeid, Outcome.INTERRUPTED))
        job_stats.record(nodeid, reported.seconds.get(nodeid, 0.0))
        job_stats.subtests_failed += reported.subtests_failed.get(nodeid, 0)
    for job_stats in jobs:  # at most: until the store says (``apply_store_peaks``)
        job_stats.peak_in_flight = min(job_stats.job.cap, len(job_stats.timings))
    return stats


def apply_store_peaks(stats: RunStats, peaks: Mapping[str, int]) -> None:
    """Each job's peak: the store's count of leases held at once over all workers.

    Both it and the workers' summed peaks are upper bounds of what was in flight at
    once (a store you share counts other runs' leases too); the smaller one is kept.
    With the run's own store and no rate it is exact.
    """
    for job_stats in stats.jobs:
        peak = peaks.get(job_stats.job.name)
        if peak is not None:
            job_stats.peak_in_flight = min(job_stats.peak_in_flight, peak)


def interrupted_line(reports: int, workers_reported: int, workers: int) -> str:
    """Says where an interrupted run's table comes from."""
    return (
        f"xdist: interrupted before the workers sent their figures ({workers_reported} of "
        f"{workers} did): the table is built from the reports of {reports} tests the "
        "controller received, peaks from the limits store; no pool wall time"
    )
