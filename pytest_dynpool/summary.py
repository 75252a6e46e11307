"""What a run measured, and the ``dynpool`` section of the terminal summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

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
    durations: list[float] = field(default_factory=list)
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    # Failed subtests (pytest's SUBFAILED), counted apart from the items' outcomes.
    subtests_failed: int = 0

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

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

    def lower_bound(self) -> float:
        """LB = max(total / N, max_j work_j / k_j, longest item), see DESIGN.md."""
        return lower_bound(
            self.workers,
            [(min(stats.job.cap, self.workers), stats.durations) for stats in self.jobs],
        )


def lower_bound(workers: int, jobs: Sequence[tuple[int, Sequence[float]]]) -> float:
    """No schedule of these durations under these caps can finish sooner."""
    all_durations = [d for _, durations in jobs for d in durations]
    if not all_durations:
        return 0.0
    per_job = max(sum(durations) / cap for cap, durations in jobs)
    return max(sum(all_durations) / workers, per_job, max(all_durations))


def align_columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


def format_summary(stats: RunStats) -> list[str]:
    """Lines of the ``dynpool`` summary section."""
    optional = [name for name in _OPTIONAL_COLUMNS if any(job.column(name) for job in stats.jobs)]
    counted: list[Outcome | str] = [Outcome.PASSED, Outcome.FAILED, Outcome.SKIPPED, *optional]
    titles = (name.value if isinstance(name, Outcome) else name for name in counted)
    header = ("job", "cap", "items", *titles, "peak", "busy s")
    rows: list[tuple[str, ...]] = [header]
    for job_stats in stats.jobs:
        job = job_stats.job
        cap = str(job.cap)
        if job.cap != job.declared_cap:
            cap += f" (declared {job.declared_cap})"
        if job.cap > stats.workers:
            cap += f" (pool bounds it to {stats.workers})"
        if job.rate is not None:
            cap += f", rate {job.rate}"
            if job.rate != job.declared_rate:
                cap += f" (declared {job.declared_rate or 'none'})"
        if job.adaptive:
            cap += ", adaptive"
        rows.append(
            (
                job.name,
                cap,
                str(job_stats.items),
                *(str(job_stats.column(name)) for name in counted),
                str(job_stats.peak_in_flight),
                f"{job_stats.busy_seconds:.2f}",
            )
        )
    lines = align_columns(rows)
    bound = stats.lower_bound()
    ratio = f"{stats.pool_wall_seconds / bound:.2f}" if bound > 0 else "n/a"
    lines.append(
        f"pool: {stats.workers} workers, peak {stats.pool_peak_in_flight} in flight, "
        f"wall {stats.pool_wall_seconds:.2f}s, lower bound {bound:.2f}s, wall/LB {ratio}"
    )
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
        lines.append(
            "warning: --dynpool-cap/dynpool_caps or --dynpool-rate/dynpool_rates name no "
            "selected job: " + ", ".join(stats.unknown_overrides)
        )
    return lines
