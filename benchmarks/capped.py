"""Scenario 1: a capped I/O suite against a local HTTP server, wall time against LB.

Every test makes one request to the benchmark's own server (fixed latency per request).
Jobs are capped 1, 2, 4 and 8 and have unequal sizes; the pool has N workers. The table
shows the peak in flight per endpoint as the server saw it (never above the cap, or the
benchmark fails) and the pooled phase's wall time against
LB = max(total / N, max_j work_j / k_j, longest test), from the plugin's own figures.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .common import RESULT_CONFTEST, RunResult, Workspace, fail, progress, table
from .server import LatencyServer, Traffic

CLIENT_CONFTEST = '''
import http.client
import os

import pytest


@pytest.fixture
def get():
    """One GET to the benchmark's server on a fresh connection (no proxy, no pooling)."""
    port = int(os.environ["DYNPOOL_BENCH_PORT"])

    def call(endpoint):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.request("GET", "/" + endpoint)
            return connection.getresponse().read().decode()
        finally:
            connection.close()

    return call
'''

TEST_MODULE = """\
import pytest

pytestmark = [
    pytest.mark.dynpool(max_concurrency={cap}, job="{name}"),
    pytest.mark.xdist_group("{name}"),
]


@pytest.mark.parametrize("n", range({items}))
def test_request(n, get):
    assert get("{name}") == "{name}"
"""


@dataclass(frozen=True)
class JobSize:
    name: str
    cap: int
    items: int


@dataclass(frozen=True)
class CappedSuite:
    """The generated suite and the sizes it was made with."""

    root: Path
    jobs: tuple[JobSize, ...]
    latency: float
    workers: int

    @property
    def items(self) -> int:
        return sum(job.items for job in self.jobs)


@dataclass(frozen=True)
class ServerRun:
    """One pytest run on the capped suite and the traffic the server saw during it."""

    run: RunResult
    traffic: Traffic


FULL_JOBS = (
    JobSize("one", 1, 24),
    JobSize("two", 2, 40),
    JobSize("four", 4, 96),
    JobSize("eight", 8, 160),
)
SMOKE_JOBS = tuple(JobSize(job.name, job.cap, 2 * job.cap) for job in FULL_JOBS)


def write_suite(workspace: Workspace) -> CappedSuite:
    smoke = workspace.settings.smoke
    jobs = SMOKE_JOBS if smoke else FULL_JOBS
    root = workspace.new_suite("capped", RESULT_CONFTEST + CLIENT_CONFTEST)
    for job in jobs:
        source = TEST_MODULE.format(name=job.name, cap=job.cap, items=job.items)
        (root / f"test_{job.name}.py").write_text(source, encoding="utf-8")
    latency = 0.005 if smoke else 0.05
    return CappedSuite(root=root, jobs=jobs, latency=latency, workers=2 if smoke else 16)


def run_on_server(
    workspace: Workspace,
    suite: CappedSuite,
    server: LatencyServer,
    args: list[str],
    python: str = sys.executable,
) -> ServerRun:
    """Run pytest on the suite; every item must have made its request."""
    server.take_traffic()
    port = {"DYNPOOL_BENCH_PORT": str(server.port)}
    run = workspace.run(suite.root, args, passed=suite.items, extra_env=port, python=python)
    traffic = server.take_traffic()
    if sum(traffic.requests.values()) != suite.items:
        fail(f"the server saw {traffic.requests}, expected {suite.items} requests", args, "")
    return ServerRun(run=run, traffic=traffic)


def run_dynpool(
    workspace: Workspace, suite: CappedSuite, server: LatencyServer, python: str = sys.executable
) -> ServerRun:
    progress(f"capped: dynpool, {suite.workers} workers")
    args = ["--dynpool-workers", str(suite.workers)]
    result = run_on_server(workspace, suite, server, args, python=python)
    over = [job.name for job in suite.jobs if result.traffic.peaks.get(job.name, 0) > job.cap]
    if over or result.run.pool is None:
        fail(f"dynpool went over the cap of {over} (or wrote no figures)", [], result.run.output)
    return result


def format_table(suite: CappedSuite, result: ServerRun) -> str:
    pool = result.run.pool
    assert pool is not None  # run_dynpool checked it
    figures = {job.name: job for job in pool.jobs}
    rows = []
    for job in suite.jobs:
        measured = figures[job.name]
        rows.append(
            [
                job.name,
                str(job.cap),
                str(job.items),
                f"{measured.work:.2f}",
                f"{measured.work / job.cap:.2f}",
                str(result.traffic.peaks.get(job.name, 0)),
                str(measured.peak),
            ]
        )
    total = sum(job.work for job in pool.jobs)
    longest = max(job.longest for job in pool.jobs)
    rows.append(
        [
            f"all (N = {pool.workers})",
            "",
            str(suite.items),
            f"{total:.2f}",
            f"{total / pool.workers:.2f} (/N)",
            str(result.traffic.peak_total),
            str(pool.peak),
        ]
    )
    header = ["job", "cap", "items", "work s", "work/cap s", "peak at server", "peak in pool"]
    lines = [
        f"### 1. Capped I/O suite: {suite.items} tests, one request each, "
        f"{suite.latency * 1000:.0f} ms per request, N = {suite.workers} workers",
        "",
        table(header, rows, "l"),
        "",
        f"Pooled phase: wall **{pool.wall:.2f} s**, LB {pool.lower_bound:.2f} s "
        f"(longest test {longest:.3f} s), **wall/LB {pool.ratio:.2f}**. "
        "Work is the measured duration of the job's tests (setup to teardown); "
        "no endpoint's peak at the server exceeds its cap.",
    ]
    return "\n".join(lines)
