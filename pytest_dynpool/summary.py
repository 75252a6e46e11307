"""What a run measured, and the ``dynpool`` section of the terminal summary."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from .bounds import Bound, JobWork, lower_bound
from .model import Job

if TYPE_CHECKING:
    from .jobs import Plan


class Outcome(str, Enum):
    """The summary outcome of one item, worst report wins.

    ``INTERRUPTED``: a ``KeyboardInterrupt`` or ``pytest.exit()`` ended the item
    before it reported an outcome (plain pytest shows none for it either).
    """

    PASSED = "passed"
    SKIPPED = "skipped"
    FAILED = "failed"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    INTERRUPTED = "interrupted"


_RANK = {
    Outcome.PASSED: 0,
    Outcome.XPASSED: 1,
    Outcome.XFAILED: 1,
    Outcome.SKIPPED: 1,
    Outcome.FAILED: 2,
    Outcome.INTERRUPTED: 3,
}
# Columns shown only when some job has a count in them, so that a plain run's table
# stays as it was.
_OPTIONAL_COLUMNS = (Outcome.XFAILED, Outcome.XPASSED, "subfailed", Outcome.INTERRUPTED)


def worse(current: Outcome | None, new: Outcome) -> Outcome:
    if current is None or _RANK[new] > _RANK[current]:
        return new
    return current


@dataclass
class JobStats:
    """Figures for one job's row."""

    job: Job
    items: int = 0
    peak_in_flight: int = 0
    busy_seconds: float = 0.0
    timings: list[tuple[str, float]] = field(default_factory=list)
    """(node id, seconds in flight) of each item that ran."""
    waited: list[float] = field(default_factory=list)
    """Seconds each item of ``timings`` was blocked on its own job's limits (``own_waits``)."""
    slot_uses: list[float] = field(default_factory=list)
    """Seconds of each use of one of the job's cap slots inside pooled items (``own_waits``)."""
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    mean_cap: float | None = None
    """The concurrency the job was allowed, averaged over the pooled phase (None: its cap)."""
    # Failed subtests (pytest's SUBFAILED), counted apart from the items' outcomes.
    subtests_failed: int = 0

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def record(self, node_id: str, seconds: float, waited: float = 0.0) -> None:
        """One item's time in flight, setup to teardown, and how much of it it was blocked
        on its own job's limits."""
        self.busy_seconds += seconds
        self.timings.append((node_id, seconds))
        self.waited.append(waited)

    @property
    def durations(self) -> list[float]:
        return [seconds for _, seconds in self.timings]

    def work(self, workers: int) -> JobWork:
        job = self.job
        return JobWork(
            name=job.name,
            cap=self.mean_cap if self.mean_cap is not None else min(job.cap, workers),
            items=self.timings,
            per_second=job.rate.per_second if job.rate is not None else None,
            burst=job.cap,
            waited=self.waited,
            slot_uses=self.slot_uses,
            slots=job.cap,
        )

    def column(self, name: Outcome | str) -> int:
        if name == "subfailed":
            return self.subtests_failed
        return self.outcomes.get(Outcome(name), 0)


@dataclass
class RunStats:
    """Everything the summary shows; filled by the executor on the coordinator."""

    workers: int
    jobs: list[JobStats] = field(default_factory=list)
    exclusive_items: int = 0
    pool_wall_seconds: float = 0.0
    pool_peak_in_flight: int = 0
    not_started: int = 0
    unknown_overrides: list[str] = field(default_factory=list)
    outside_tests_output: str = ""
    timed_out: list[str] = field(default_factory=list)
    threads_left_behind: int = 0
    # Items of jobs that ran alone, among the exclusive ones: why (a fixture, the marker) -> count.
    alone: dict[str, int] = field(default_factory=dict)
    session_teardowns: list[tuple[str, float]] = field(default_factory=list)
    """(node id, seconds): the item whose teardown tore the session down inside the pooled
    phase, after every other item, and how long that took; one per process (xdist)."""

    @classmethod
    def for_plan(cls, plan: Plan, workers: int) -> RunStats:
        """Empty figures for every job of ``plan``, with its item counts."""
        stats = cls(
            workers=workers,
            jobs=[JobStats(job) for job in plan.jobs],
            exclusive_items=len(plan.exclusive),
            alone=dict(plan.alone),
            unknown_overrides=plan.unknown_overrides,
        )
        for pooled in plan.pooled:
            stats.jobs[pooled.job_index].items += 1
        return stats

    def bound(self) -> Bound:
        """The pooled phase's lower bound and what set it (``bounds.lower_bound``)."""
        return lower_bound(
            self.workers, [stats.work(self.workers) for stats in self.jobs], self.session_teardowns
        )

    def add_slot_uses(self, job_name: str, seconds: Sequence[float]) -> None:
        """Uses of job ``job_name``'s cap slots inside a pooled item (of any job)."""
        for stats in self.jobs:
            if stats.job.name == job_name:
                stats.slot_uses.extend(seconds)
                return

    def lower_bound(self) -> float:
        return self.bound().seconds

    def item_seconds(self) -> dict[str, float]:
        """Each item's time in flight by node id: what the next run's scheduler expects."""
        return {node_id: seconds for stats in self.jobs for node_id, seconds in stats.timings}


def align_columns(rows: Sequence[Sequence[str]], left: Collection[int] = (0,)) -> list[str]:
    """Rows as lines: the ``left`` columns (the first) left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def cap_text(job: Job, workers: int) -> str:
    """A job's cap as the summaries show it: with the declared one and the pool's bound."""
    cap = str(job.cap)
    if job.cap != job.declared_cap:
        cap += f" (declared {job.declared_cap})"
    if job.cap > workers:
        cap += f" (pool bounds it to {workers})"
    return cap


def rate_text(job: Job) -> str:
    """A job's rate, with the declared one when an override changed it; '-' for none."""
    rate = "-" if job.rate is None else str(job.rate)
    if job.rate != job.declared_rate:
        rate += f" (declared {job.declared_rate or 'none'})"
    return rate


def limits_text(job: Job, workers: int) -> str:
    """The job table's cap column: cap, rate and adaptive mode in one cell."""
    text = cap_text(job, workers)
    if job.rate is not None:
        text += f", rate {rate_text(job)}"
    if job.adaptive:
        text += ", adaptive"
    return text


def job_table_rows(stats: RunStats) -> list[tuple[str, ...]]:
    """The job table's rows, header first: one per job (terminal and step summary)."""
    optional = [name for name in _OPTIONAL_COLUMNS if any(job.column(name) for job in stats.jobs)]
    counted: list[Outcome | str] = [Outcome.PASSED, Outcome.FAILED, Outcome.SKIPPED, *optional]
    titles = (name.value if isinstance(name, Outcome) else name for name in counted)
    header = ("job", "cap", "items", *titles, "peak", "busy s")
    rows: list[tuple[str, ...]] = [header]
    for job_stats in stats.jobs:
        rows.append(
            (
                job_stats.job.name,
                limits_text(job_stats.job, stats.workers),
                str(job_stats.items),
                *(str(job_stats.column(name)) for name in counted),
                str(job_stats.peak_in_flight),
                f"{job_stats.busy_seconds:.2f}",
            )
        )
    return rows


def pool_line(stats: RunStats) -> str:
    """The pool line: workers, peak, wall time against its lower bound and what set it."""
    bound = stats.bound()
    ratio = f"{stats.pool_wall_seconds / bound.seconds:.2f}" if bound.seconds > 0 else "n/a"
    return (
        f"pool: {stats.workers} workers, peak {stats.pool_peak_in_flight} in flight, "
        f"wall {stats.pool_wall_seconds:.2f}s, lower bound {bound.seconds:.2f}s "
        f"(bounded by {bound.reason}), wall/LB {ratio}"
    )


def format_summary(stats: RunStats) -> list[str]:
    """Lines of the ``dynpool`` summary section."""
    lines = align_columns(job_table_rows(stats))
    lines.append(pool_line(stats))
    unmarked_alone = stats.exclusive_items - sum(stats.alone.values())
    if unmarked_alone:
        lines.append(f"exclusive: {unmarked_alone} unmarked items ran alone")
    if stats.alone:
        why = ", ".join(f"{name} {count}" for name, count in sorted(stats.alone.items()))
        lines.append(
            f"alone: {sum(stats.alone.values())} items of jobs ran alone, for a thread-unsafe "
            f"fixture or the dynpool_alone marker ({why})"
        )
    if stats.not_started:
        lines.append(f"not started: {stats.not_started} pooled items (run stopped early)")
    if stats.outside_tests_output:
        count = len(stats.outside_tests_output.splitlines())
        lines.append(
            f"outside tests: {count} lines of output or log from threads of no running test"
        )
    if stats.timed_out:
        lines.append(
            f"timeout: {len(stats.timed_out)} items failed for running too long; "
            f"{stats.threads_left_behind} worker threads left behind, still running "
            "(Python cannot kill a thread)"
        )
    if stats.unknown_overrides:
        lines.append(unknown_overrides_line(stats.unknown_overrides))
    return lines


def unknown_overrides_line(names: Sequence[str]) -> str:
    """The warning for overrides that match no selected job (a typo, or a deselected job)."""
    return (
        "warning: --dynpool-cap/dynpool_caps or --dynpool-rate/dynpool_rates name no "
        "selected job: " + ", ".join(names)
    )
