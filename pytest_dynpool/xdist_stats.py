"""One dynpool summary for a whole ``-n`` run: each worker's RunStats, sent and merged.

A worker's stats travel in ``workeroutput`` as plain data (execnet sends only
builtins). On the controller the jobs are merged by name with their cap over
the whole run; a job's peak is the sum of the workers' peaks, but at most its
cap: an upper bound of what was in flight at once (the run's limits store never
let more than the cap in, all workers together), which the controller then
narrows with the store's own peak (``xdist_summary.apply_store_peaks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .jobs import UNMARKED_JOB
from .model import Job, Rate
from .summary import JobStats, Outcome, RunStats


def _rate_to_list(rate: Rate | None) -> list[Any] | None:
    return None if rate is None else [rate.count, rate.period_seconds, rate.text]


def _rate_from_list(data: list[Any] | None) -> Rate | None:
    return None if data is None else Rate(float(data[0]), float(data[1]), str(data[2]))


def stats_to_dict(stats: RunStats) -> dict[str, Any]:
    """``stats`` as builtins (execnet sends nothing else)."""
    jobs = []
    for job_stats in stats.jobs:
        job = job_stats.job
        jobs.append(
            {
                "job": [job.name, job.cap, job.declared_cap, job.declared_at, job.adaptive],
                "rate": _rate_to_list(job.rate),
                "declared_rate": _rate_to_list(job.declared_rate),
                "items": job_stats.items,
                "peak": job_stats.peak_in_flight,
                "busy": job_stats.busy_seconds,
                "timings": [[node_id, seconds] for node_id, seconds in job_stats.timings],
                "waited": job_stats.waited,
                "slot_uses": job_stats.slot_uses,
                "outcomes": {outcome.value: n for outcome, n in job_stats.outcomes.items()},
            }
        )
    return {
        "workers": stats.workers,
        "jobs": jobs,
        "exclusive_items": stats.exclusive_items,
        "wall": stats.pool_wall_seconds,
        "peak": stats.pool_peak_in_flight,
        "not_started": stats.not_started,
        "unknown_overrides": stats.unknown_overrides,
        "outside": stats.outside_tests_output,
        "timed_out": stats.timed_out,
        "left_behind": stats.threads_left_behind,
        "session_teardowns": [[node_id, seconds] for node_id, seconds in stats.session_teardowns],
    }


@dataclass
class MergedRun:
    """The whole run's stats and each worker's pooled wall time."""

    stats: RunStats
    walls: dict[str, float] = field(default_factory=dict)


def merge(per_worker: Sequence[tuple[str, dict[str, Any]]]) -> MergedRun:
    """All workers' stats as one RunStats (pool = all threads of all workers)."""
    merged = RunStats(workers=0)
    by_name: dict[str, JobStats] = {}
    walls: dict[str, float] = {}
    # Each worker that ran items tore its own session down after them: the shortest such
    # teardown follows the merged bound, unless some worker's went unmeasured.
    teardowns: list[tuple[str, float]] = []
    every_teardown_known = True
    for worker, data in per_worker:
        if any(job_data["timings"] for job_data in data["jobs"]):
            known = data["session_teardowns"]
            every_teardown_known = every_teardown_known and bool(known)
            teardowns.extend((str(node_id), float(seconds)) for node_id, seconds in known)
        merged.workers += int(data["workers"])
        merged.exclusive_items += int(data["exclusive_items"])
        merged.pool_peak_in_flight += int(data["peak"])
        merged.not_started += int(data["not_started"])
        merged.outside_tests_output += str(data["outside"])
        merged.timed_out.extend(data["timed_out"])
        merged.threads_left_behind += int(data["left_behind"])
        merged.unknown_overrides = sorted(
            set(merged.unknown_overrides) | set(data["unknown_overrides"])
        )
        walls[worker] = float(data["wall"])
        for job_data in data["jobs"]:
            name, cap, declared_cap, declared_at, adaptive = job_data["job"]
            job_stats = by_name.get(name)
            if job_stats is None:
                job = Job(
                    name,
                    int(cap),
                    int(declared_cap),
                    str(declared_at),
                    rate=_rate_from_list(job_data["rate"]),
                    declared_rate=_rate_from_list(job_data["declared_rate"]),
                    adaptive=bool(adaptive),
                )
                job_stats = by_name[name] = JobStats(job)
                merged.jobs.append(job_stats)
            job_stats.items += int(job_data["items"])
            summed = job_stats.peak_in_flight + int(job_data["peak"])
            # The pool-sized unmarked job is each worker's own (no store lease): its
            # cap is per worker, so the run's peak may be the sum.
            local = name == UNMARKED_JOB
            job_stats.peak_in_flight = summed if local else min(summed, job_stats.job.cap)
            job_stats.busy_seconds += float(job_data["busy"])
            for (node_id, seconds), waited in zip(
                job_data["timings"], job_data["waited"], strict=True
            ):
                job_stats.timings.append((str(node_id), float(seconds)))  # busy: summed above
                job_stats.waited.append(float(waited))
            if not local:  # a shared cap: every process's uses went through the same slots
                job_stats.slot_uses.extend(float(value) for value in job_data["slot_uses"])
            for outcome, count in job_data["outcomes"].items():
                job_stats.outcomes[Outcome(outcome)] = job_stats.outcomes.get(
                    Outcome(outcome), 0
                ) + int(count)
    merged.pool_wall_seconds = max(walls.values(), default=0.0)
    merged.session_teardowns = teardowns if every_teardown_known else []
    return MergedRun(merged, walls)


def format_balance(run: MergedRun, peaks_from_store: bool = False) -> str:
    """The xdist line: each worker's pooled wall, and the slowest against the mean."""
    walls = run.walls
    if not walls:
        return "xdist: no worker ran pooled items"
    mean = sum(walls.values()) / len(walls)
    each = ", ".join(f"{worker} {wall:.2f}s" for worker, wall in sorted(walls.items()))
    ratio = f"{max(walls.values()) / mean:.2f}" if mean > 0 else "n/a"
    peaks = (
        "job peaks as the limits store saw them over all workers"
        if peaks_from_store
        else "job peaks are summed over workers, at most the cap"
    )
    return (
        f"xdist: {len(walls)} workers, pooled wall per worker: {each} "
        f"(slowest/mean {ratio}); {peaks}"
    )
