"""Scenario 2: what users would run instead, on the same capped suite and the same server.

- plain pytest, serial: gentle and slow;
- ``pytest-xdist -n N``: fast, but blind to caps; the server's peak per endpoint shows how
  hard it hits the gentle ones;
- ``pytest-xdist -n N --dist loadgroup`` with ``xdist_group`` per job: what people do today
  to protect an endpoint, one job per worker, i.e. every cap is 1. With pytest-xdist 3.8 on
  pytest 9.2 it silently stops grouping (pytest-xdist issue #1386: it renames
  ``item._nodeid``, which pytest 9.2 no longer reads), so the table says whether it did;
- ``pytest-xdist -n N --dist loadfile``: the same grouping where it still works, since
  each job of this suite is one file.

Ratios are against the dynpool run of scenario 1: the process's wall time (start-up
included: xdist starts N interpreters) and the server's I/O span (first request to last
answer, the same measure for every runner).
"""

from __future__ import annotations

import importlib.util

from .capped import CappedSuite, ServerRun, run_on_server
from .common import PLAIN, Workspace, fail, progress, ratio, table
from .server import LatencyServer


def peer_commands(workers: int) -> list[tuple[str, list[str]]]:
    return [
        ("plain pytest (serial)", [*PLAIN]),
        (f"pytest-xdist -n {workers}", ["-n", str(workers)]),
        (
            f"pytest-xdist -n {workers} --dist loadgroup",
            ["-n", str(workers), "--dist", "loadgroup"],
        ),
        (
            f"pytest-xdist -n {workers} --dist loadfile",
            ["-n", str(workers), "--dist", "loadfile"],
        ),
    ]


def run_peers(
    workspace: Workspace, suite: CappedSuite, server: LatencyServer
) -> list[tuple[str, ServerRun]]:
    if importlib.util.find_spec("xdist") is None:
        fail("pytest-xdist is not installed: pip install -e '.[bench]'", [], "")
    results = []
    for name, args in peer_commands(suite.workers):
        progress(f"peers: {name}")
        results.append((name, run_on_server(workspace, suite, server, args)))
    return results


def format_table(suite: CappedSuite, dynpool: ServerRun, peers: list[tuple[str, ServerRun]]) -> str:
    header = ["runner", "wall s", "vs dynpool", "I/O span s", "vs dynpool"]
    header += [f"peak {job.name} (cap {job.cap})" for job in suite.jobs]
    rows = []
    for name, result in [(f"pytest-dynpool, {suite.workers} workers", dynpool), *peers]:
        peaks = []
        for job in suite.jobs:
            peak = result.traffic.peaks.get(job.name, 0)
            peaks.append(f"**{peak}**" if peak > job.cap else str(peak))
        rows.append(
            [
                name,
                f"{result.run.wall:.2f}",
                ratio(result.run.wall, dynpool.run.wall),
                f"{result.traffic.span:.2f}",
                ratio(result.traffic.span, dynpool.traffic.span),
                *peaks,
            ]
        )
    lines = [
        f"### 2. Peers on the same suite ({suite.items} tests, N = {suite.workers})",
        "",
        table(header, rows, "l"),
        "",
        "Wall: the whole pytest process, start-up included. I/O span: first request to last "
        "answer at the server. Peaks in **bold** are above the job's cap. Ratios above 1.00x "
        "mean slower than dynpool.",
    ]
    loadgroup = next(result for name, result in peers if name.endswith("loadgroup"))
    if any(peak > 1 for peak in loadgroup.traffic.peaks.values()):
        lines.append(
            "\n--dist loadgroup did **not** group this run (peaks above 1 with one group per "
            "job): pytest-xdist issue #1386, its node id rename has no effect on pytest 9.2; "
            "--dist loadfile shows what grouping would give."
        )
    return "\n".join(lines)
