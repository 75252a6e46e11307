"""Scenario 5: uneven durations, where scheduling by item count falls short of LB.

The count order ranks jobs by remaining items / cap; the duration order (the default)
by remaining expected seconds per slot, longest items first, with durations that pytest's
cache kept from an earlier run. Each case is a suite of sleeping tests (sleep releases
the GIL, so the figures are about the schedule, not the interpreter). For each the table
gives LB, the makespan each order predicts when simulated with the pure scheduler and
exact durations (zero overhead), and three measured runs in one cache: by count, then by
duration twice (the first knows no durations, the second knows the first's). A gap
between LB and a simulation is the policy's; a gap between a simulation and a
measurement is overhead.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from pytest_dynpool.bounds import JobWork, lower_bound
from pytest_dynpool.order import Order
from pytest_dynpool.scheduler import CappedScheduler

from .common import Workspace, fail, progress, table

WORKERS = 4

MODULE = """\
import time

import pytest

pytestmark = pytest.mark.dynpool(max_concurrency={cap}, job="{name}")


@pytest.mark.parametrize("seconds", {durations!r})
def test_sleep(seconds):
    time.sleep(seconds)
"""


@dataclass(frozen=True)
class UnevenJob:
    name: str
    cap: int
    durations: tuple[float, ...]
    """Sleep of each test, in collection order."""

    def describe(self) -> str:
        groups: list[tuple[int, float]] = []
        for seconds in self.durations:
            if groups and groups[-1][1] == seconds:
                groups[-1] = (groups[-1][0] + 1, seconds)
            else:
                groups.append((1, seconds))
        sizes = " + ".join(f"{count} x {seconds * 1000:g} ms" for count, seconds in groups)
        return f"{self.name}: cap {self.cap}, {sizes}"


@dataclass(frozen=True)
class Case:
    name: str
    jobs: tuple[UnevenJob, ...]

    def scaled(self, factor: float) -> Case:
        jobs = tuple(
            UnevenJob(job.name, job.cap, tuple(d * factor for d in job.durations))
            for job in self.jobs
        )
        return Case(self.name, jobs)


CASES = (
    Case(
        "even (control)",
        (UnevenJob("a", 2, (0.1,) * 24), UnevenJob("b", 2, (0.1,) * 24)),
    ),
    Case(
        "slow small job behind a big fast one",
        (UnevenJob("fast", 4, (0.02,) * 160), UnevenJob("slow", 1, (0.6,) * 3)),
    ),
    Case(
        "long test collected last",
        (UnevenJob("mixed", 4, (0.05,) * 40 + (1.5,)),),
    ),
    Case(
        "few long tests, cap 3, beside a big fast job",
        (UnevenJob("fast", 4, (0.02,) * 160), UnevenJob("slow", 3, (0.6,) * 6)),
    ),
)


def simulate(workers: int, jobs: tuple[UnevenJob, ...], order: Order, known: bool = True) -> float:
    """Makespan of the scheduler in ``order`` with exact durations and no overhead.

    ``known``: the durations are known from the start (a second run); else each is
    learned as its item ends, as on a first run.
    """
    durations = [seconds for job in jobs for seconds in job.durations]
    job_of_item = [index for index, job in enumerate(jobs) for _ in job.durations]
    now = [0.0]
    scheduler = CappedScheduler(
        workers,
        [job.cap for job in jobs],
        job_of_item,
        order=order,
        known_seconds=durations if known else (),
        clock=lambda: now[0],
    )
    running: list[tuple[float, int]] = []
    while True:
        item = scheduler.next_dispatch()
        while item is not None:
            heapq.heappush(running, (now[0] + durations[item], item))
            item = scheduler.next_dispatch()
        if not running:
            return now[0]
        now[0], item = heapq.heappop(running)
        scheduler.complete(item, durations[item])


def nominal_bound(case: Case) -> float:
    jobs = [
        JobWork(job.name, min(job.cap, WORKERS), [(job.name, d) for d in job.durations])
        for job in case.jobs
    ]
    return lower_bound(WORKERS, jobs).seconds


def run(workspace: Workspace) -> str:
    factor = 0.05 if workspace.settings.smoke else 1.0
    rows = []
    for number, template in enumerate(CASES):
        case = template.scaled(factor)
        root = workspace.new_suite(f"uneven-{number}")
        for job in case.jobs:
            source = MODULE.format(cap=job.cap, name=job.name, durations=list(job.durations))
            (root / f"test_{job.name}.py").write_text(source, encoding="utf-8")
        items = sum(len(job.durations) for job in case.jobs)
        workspace.warm_up(root)
        measured = []
        runs = (("count", "count", False), ("first", "duration", True))
        for label, order, cache in (*runs, ("second", "duration", True)):
            args = ["--dynpool-workers", str(WORKERS), "--dynpool-order", order]
            # The count run keeps nothing, so that the first run by duration knows nothing.
            result = workspace.run(root, args, passed=items, cache=cache)
            if result.pool is None:
                fail("the pooled phase wrote no figures", [], result.output)
            pool = result.pool
            progress(f"uneven: {case.name}, {label} run by {order}, wall {pool.wall:.2f}s")
            measured.append(f"{pool.wall:.2f} / {pool.ratio:.2f}")
        nominal = nominal_bound(case)
        by_count = simulate(WORKERS, case.jobs, Order.COUNT)
        by_duration = simulate(WORKERS, case.jobs, Order.DURATION)
        first_run = simulate(WORKERS, case.jobs, Order.DURATION, known=False)
        rows.append(
            [
                case.name,
                "; ".join(job.describe() for job in case.jobs),
                f"{nominal:.2f}",
                f"{by_count / nominal:.2f}",
                f"{first_run / nominal:.2f}",
                f"{by_duration / nominal:.2f}",
                *measured,
            ]
        )
    header = ["case", "jobs (cap, tests x sleep)", "LB s", "count, simulated /LB"]
    header += ["duration 1st run, simulated /LB", "duration 2nd run, simulated /LB"]
    header += ["count: wall s / LB"]
    header += ["duration, 1st run: wall s / LB", "duration, 2nd run: wall s / LB"]
    lines = [
        f"### 5. Uneven durations: sleeping tests, {WORKERS} workers, one run each",
        "",
        table(header, rows, "ll"),
        "",
        "LB from the nominal sleeps; a measured wall/LB uses the plugin's LB from the measured "
        "durations. Simulated: the pure scheduler replayed with exact durations (on a 1st run "
        "learned as each test ends or runs, on a 2nd known from the start). The three "
        "measured runs, in this order: by count (the order before issue 14; cache off), by "
        "duration with an empty cache (a suite's first run), by duration with the durations "
        "the first run kept in pytest's cache.",
    ]
    return "\n".join(lines)
