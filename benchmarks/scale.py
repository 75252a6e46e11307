"""Scenario 4: scale. Many trivial tests in many jobs: wall, peak RSS, dispatch growth.

Runs a generated suite of 5,000 and of 50,000 trivial tests (one job of 100 parametrized
items per module, caps cycling 1/2/4/8) with the plugin on 4 workers and with plain
pytest, each in a fresh process, and reports wall time and peak RSS. Dispatch is also timed
in-process with the pure scheduler (``pytest_dynpool.scheduler``) from 5,000 to 50,000
items: per-item cost must stay flat, i.e. total dispatch time linear in the items.
"""

from __future__ import annotations

import time
from collections import deque

from pytest_dynpool.scheduler import CappedScheduler

from .common import PLAIN, RunResult, Workspace, progress, ratio, table

CAPS = (1, 2, 4, 8)
ITEMS_PER_JOB = 100
WORKERS = 4

MODULE = """\
import pytest

pytestmark = pytest.mark.dynpool(max_concurrency={cap})


@pytest.mark.parametrize("n", range({items}))
def test_trivial(n):
    assert n >= 0
"""


def time_scheduler(items: int, jobs: int, repeats: int = 5) -> tuple[float, float]:
    """Fastest build time and fastest dispatch-and-complete time of all items, in seconds."""
    caps = [CAPS[job % len(CAPS)] for job in range(jobs)]
    job_of_item = [item * jobs // items for item in range(items)]
    best_build = best_drain = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        scheduler = CappedScheduler(WORKERS, caps, job_of_item)
        built = time.perf_counter()
        running: deque[int] = deque()
        while True:
            item = scheduler.next_dispatch()
            while item is not None:
                running.append(item)
                item = scheduler.next_dispatch()
            if not running:
                break
            scheduler.complete(running.popleft())
        drained = time.perf_counter()
        if scheduler.pending:
            raise AssertionError(f"scheduler left {scheduler.pending} items undispatched")
        best_build = min(best_build, built - started)
        best_drain = min(best_drain, drained - built)
    return best_build, best_drain


def write_suite(workspace: Workspace, items: int) -> int:
    """Write the suite for ``items`` tests; returns the number of jobs."""
    root = workspace.new_suite(f"scale-{items}")
    jobs = items // ITEMS_PER_JOB
    for job in range(jobs):
        source = MODULE.format(cap=CAPS[job % len(CAPS)], items=ITEMS_PER_JOB)
        (root / f"test_job_{job:04d}.py").write_text(source, encoding="utf-8")
    return jobs


def run_sizes(workspace: Workspace, sizes: tuple[int, ...]) -> list[list[str]]:
    rows = []
    for items in sizes:
        jobs = write_suite(workspace, items)
        root = workspace.root / f"scale-{items}"
        workspace.warm_up(root)
        runs: dict[str, RunResult] = {}
        for name, args in (("plain", PLAIN), ("dynpool", ("--dynpool-workers", str(WORKERS)))):
            runs[name] = workspace.run(root, args, passed=items)
            progress(f"scale: {items} tests, {name}, {runs[name].wall:.2f}s")
        plain, pooled = runs["plain"], runs["dynpool"]
        pool = pooled.pool
        pool_cells = ["n/a", "n/a"] if pool is None else [f"{pool.wall:.2f}"]
        if pool is not None:
            pool_cells.append(f"{pool.wall / items * 1e6:.0f}")
        rows.append(
            [
                f"{items:,}",
                str(jobs),
                f"{plain.wall:.2f}",
                f"{pooled.wall:.2f}",
                ratio(pooled.wall, plain.wall),
                ratio(pooled.cpu, plain.cpu),
                *pool_cells,
                f"{plain.max_rss_mib:.0f}",
                f"{pooled.max_rss_mib:.0f}",
                ratio(pooled.max_rss_mib, plain.max_rss_mib),
            ]
        )
    return rows


def scheduler_rows(sizes: tuple[int, ...]) -> list[list[str]]:
    time_scheduler(sizes[0], sizes[0] // ITEMS_PER_JOB)  # warm-up: allocator, caches
    rows = []
    base: float | None = None
    for items in sizes:
        jobs = items // ITEMS_PER_JOB
        build, drain = time_scheduler(items, jobs)
        per_item = (build + drain) / items
        base = per_item if base is None else base
        rows.append(
            [
                f"{items:,}",
                str(jobs),
                f"{build * 1e3:.1f}",
                f"{drain * 1e3:.1f}",
                f"{per_item * 1e6:.2f}",
                ratio(per_item, base),
            ]
        )
    return rows


def run(workspace: Workspace) -> str:
    smoke = workspace.settings.smoke
    pytest_sizes = (300,) if smoke else (5000, 50000)
    scheduler_sizes = (500, 2000) if smoke else (5000, 10000, 20000, 50000)
    header = ["tests", "jobs", "plain s", "dynpool s", "vs plain", "CPU vs plain", "pool phase s"]
    header += ["pool us/test", "plain RSS MiB", "dynpool RSS MiB", "RSS vs plain"]
    sched_header = ["items", "jobs", "build ms", "dispatch + complete ms", "us/item"]
    sched_header.append(f"us/item vs {scheduler_sizes[0]:,}")
    lines = [
        f"### 4. Scale: trivial tests, {ITEMS_PER_JOB} per job, caps 1/2/4/8, "
        f"{WORKERS} workers, one run each",
        "",
        table(header, run_sizes(workspace, pytest_sizes)),
        "",
        "Peak RSS: ru_maxrss of the pytest process (os.wait4); CPU: its user + system time. "
        "pool us/test: the pooled phase's wall time per test, running the tests included.",
        "",
        "The pure scheduler alone (in-process, after a warm-up, fastest of 5; every dispatch and "
        f"completion of a {WORKERS}-worker run):",
        "",
        table(sched_header, scheduler_rows(scheduler_sizes)),
    ]
    return "\n".join(lines)
