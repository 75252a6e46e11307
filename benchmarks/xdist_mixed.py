"""Scenario 8: dynpool under pytest-xdist (``-n 2``), on a mixed suite and on trivial tests.

Mixed suite: tests that each burn about 20 ms of pure-Python CPU (their own thread's
CPU time, so the GIL cannot shorten it), and capped I/O tests, one request each to the
benchmark's server. Runners, in one session: ``-n 2 --dynpool-workers 8`` (two processes
for the cores, threads for the waits), one process with 16 workers (the GIL holds the CPU
tests to one core), and ``pytest -n 16`` without dynpool (blind to the caps). The server's
peaks per endpoint show who kept the caps.

Overhead: 2,000 trivial tests under ``-n 2``, marked (run on each worker's pool) and
unmarked (dynpool on, nothing pooled: xdist's own scheduling), against plain
``pytest -n 2 -p no:dynpool``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .capped import CLIENT_CONFTEST
from .common import PLAIN, RESULT_CONFTEST, RunResult, Workspace, fail, progress, ratio, table
from .server import LatencyServer, Traffic

BALANCE_RE = re.compile(r"slowest/mean ([0-9.]+|n/a)")
POOL_WALL_RE = re.compile(r"^pool: .* wall ([0-9.]+)s", re.MULTILINE)

CPU_MODULE = """\
import time

import pytest


@pytest.mark.dynpool(16, job="cpu")
@pytest.mark.parametrize("n", range({items}))
def test_cpu(n):
    # {millis} ms of this thread's own CPU in pure Python.
    end = time.thread_time() + {millis} / 1000
    total = 0
    while time.thread_time() < end:
        total += sum(i * i for i in range(200))
    assert total > 0
"""

IO_MODULE = """\
import pytest


@pytest.mark.dynpool({cap}, job="{name}")
@pytest.mark.parametrize("n", range({items}))
def test_request(n, get):
    assert get("{name}") == "{name}"
"""

TRIVIAL_MODULE = """\
import pytest

{mark}
@pytest.mark.parametrize("n", range({items}))
def test_trivial(n):
    assert n >= 0
"""


@dataclass(frozen=True)
class IoJob:
    name: str
    cap: int
    items: int


FULL_IO = (IoJob("one", 1, 12), IoJob("two", 2, 30), IoJob("four", 4, 80))
SMOKE_IO = tuple(IoJob(job.name, job.cap, 2 * job.cap) for job in FULL_IO)


@dataclass(frozen=True)
class MixedRun:
    name: str
    run: RunResult
    traffic: Traffic


def pooled_wall(output: str) -> str:
    found = POOL_WALL_RE.search(output)
    return found.group(1) if found else "-"


def write_mixed(workspace: Workspace, cpu_items: int, io: tuple[IoJob, ...]) -> Path:
    root = workspace.new_suite("xdist-mixed", RESULT_CONFTEST + CLIENT_CONFTEST)
    source = CPU_MODULE.format(items=cpu_items, millis=20)
    (root / "test_cpu.py").write_text(source, encoding="utf-8")
    for job in io:
        source = IO_MODULE.format(name=job.name, cap=job.cap, items=job.items)
        (root / f"test_io_{job.name}.py").write_text(source, encoding="utf-8")
    return root


def run_mixed(workspace: Workspace) -> str:
    smoke = workspace.settings.smoke
    io = SMOKE_IO if smoke else FULL_IO
    cpu_items = 4 if smoke else 300
    latency = 0.005 if smoke else 0.1
    total = cpu_items + sum(job.items for job in io)
    root = write_mixed(workspace, cpu_items, io)
    workspace.warm_up(root)
    runners = [
        ("dynpool -n 2 --dynpool-workers 8", ["-n", "2", "--dynpool-workers", "8"]),
        ("dynpool, one process, 16 workers", ["--dynpool-workers", "16"]),
        ("pytest -n 16 (no dynpool)", ["-n", "16", *PLAIN]),
    ]
    results: list[MixedRun] = []
    with LatencyServer(latency) as server:
        for name, args in runners:
            progress(f"xdist mixed: {name}")
            server.take_traffic()
            run = workspace.run(
                root, args, passed=total, extra_env={"DYNPOOL_BENCH_PORT": str(server.port)}
            )
            traffic = server.take_traffic()
            if sum(traffic.requests.values()) != total - cpu_items:
                fail(f"the server saw {traffic.requests}", args, run.output)
            results.append(MixedRun(name, run, traffic))
    for result in results[:2]:
        over = [job.name for job in io if result.traffic.peaks.get(job.name, 0) > job.cap]
        if over:
            fail(f"{result.name} went over the caps of {over}", [], result.run.output)
    base = results[0].run.wall
    header = ["runner", "wall s", "vs -n 2 dynpool", "pooled phase s", "CPU s", "I/O span s"]
    header += [f"peak {job.name} (cap {job.cap})" for job in io] + ["peak total"]
    rows = [
        [
            result.name,
            f"{result.run.wall:.2f}",
            ratio(result.run.wall, base),
            pooled_wall(result.run.output),
            f"{result.run.cpu:.2f}",
            f"{result.traffic.span:.2f}",
            *(str(result.traffic.peaks.get(job.name, 0)) for job in io),
            str(result.traffic.peak_total),
        ]
        for result in results
    ]
    io_work = sum(job.items * latency / job.cap for job in io)
    found = BALANCE_RE.search(results[0].run.output)
    balance = found.group(1) if found else "n/a"
    lines = [
        f"### 8a. Mixed suite under pytest-xdist: {cpu_items} CPU tests of 20 ms "
        f"(job cap 16) and {total - cpu_items} requests of {latency * 1000:.0f} ms "
        f"(caps {', '.join(str(job.cap) for job in io)})",
        "",
        table(header, rows, "l"),
        "",
        f"CPU work {cpu_items * 0.02:.1f} s (two cores: at best {cpu_items * 0.01:.1f} s); "
        f"the longest capped job alone needs {max(j.items * latency / j.cap for j in io):.1f} s "
        f"(all capped I/O: {io_work:.1f} s of work/cap). Wall includes start-up "
        "(-n 16 starts 16 interpreters); the pooled phase is dynpool's own figure (under "
        "-n 2: the slowest worker's). CPU: user + system of pytest and its workers. "
        "Peaks are what the server saw, all processes together. Balance of the -n 2 run "
        f"(pooled wall of the slowest worker / the mean): {balance}.",
    ]
    return "\n".join(lines)


def write_trivial(workspace: Workspace, name: str, tests: int, marked: bool) -> Path:
    root = workspace.new_suite(name)
    mark = '@pytest.mark.dynpool(8, job="trivial")' if marked else ""
    files = 20
    for index in range(files):
        count = tests // files + (1 if index < tests % files else 0)
        source = TRIVIAL_MODULE.format(mark=mark, items=count)
        (root / f"test_trivial_{index:02d}.py").write_text(source, encoding="utf-8")
    return root


def run_overhead(workspace: Workspace) -> str:
    settings = workspace.settings
    tests = 40 if settings.smoke else 2000
    suites = {
        "marked": write_trivial(workspace, "xdist-marked", tests, marked=True),
        "unmarked": write_trivial(workspace, "xdist-unmarked", tests, marked=False),
    }
    for root in suites.values():
        workspace.warm_up(root)
    variants = [
        ("plain pytest -n 2 (-p no:dynpool)", "marked", ["-n", "2", *PLAIN]),
        (
            "dynpool -n 2, marked (pooled, 4 workers)",
            "marked",
            ["-n", "2", "--dynpool-workers", "4"],
        ),
        (
            "dynpool -n 2, marked, --dynpool-xdist-balance=fixed (no claims)",
            "marked",
            ["-n", "2", "--dynpool-workers", "4", "--dynpool-xdist-balance=fixed"],
        ),
        ("dynpool -n 2, unmarked (xdist's scheduling)", "unmarked", ["-n", "2"]),
    ]
    walls: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    cpus: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for round_index in range(settings.rounds):
        shift = round_index % len(variants)
        for name, suite, args in variants[shift:] + variants[:shift]:
            run = workspace.run(suites[suite], args, passed=tests)
            walls[name].append(run.wall)
            cpus[name].append(run.cpu)
            progress(f"xdist overhead: {name}, {run.wall:.2f}s")
    plain = variants[0][0]

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    rows = [
        [
            name,
            f"{median(walls[name]):.2f}",
            ratio(median(walls[name]), median(walls[plain])),
            ratio(median(cpus[name]), median(cpus[plain])),
        ]
        for name, _, _ in variants
    ]
    return "\n".join(
        [
            f"### 8b. Overhead under pytest-xdist: {tests:,} trivial tests, -n 2, "
            f"{settings.rounds} rounds, medians",
            "",
            table(["variant", "median wall s", "vs plain -n 2", "CPU vs plain"], rows, "l"),
        ]
    )


UNEVEN_MODULE = """\
import random
import time

import pytest

# Seeded, so every run has the same durations: most short, one in eight long.
DURATIONS = [random.Random(n).choice([0.05] * 7 + [{long}]) for n in range({items})]


@pytest.mark.dynpool(8, job="uneven")
@pytest.mark.parametrize("n", range({items}))
def test_uneven(n):
    time.sleep(DURATIONS[n])
"""
WALLS_RE = re.compile(r"pooled wall per worker: ([^(]*)\(")


def idle_fraction(output: str) -> tuple[str, float]:
    """The workers' pooled walls, and the share of worker time spent idle at the end.

    Idle fraction = 1 - mean / slowest: how much of the workers' time, counted up
    to the slowest worker's end, passed with the worker done and waiting.
    """
    found = WALLS_RE.search(output)
    if found is None:
        fail("no xdist: line in the output", [], output)
    walls = [float(part.split()[1].rstrip("s")) for part in found.group(1).split(",")]
    return found.group(1).strip(), 1 - sum(walls) / len(walls) / max(walls)


def run_uneven(workspace: Workspace) -> str:
    """Static balance under -n 2: items go to workers up front, so uneven durations idle one."""
    smoke = workspace.settings.smoke
    items, long = (16, 0.2) if smoke else (160, 1.0)
    root = workspace.new_suite("xdist-uneven", RESULT_CONFTEST)
    (root / "test_uneven.py").write_text(
        UNEVEN_MODULE.format(items=items, long=long), encoding="utf-8"
    )
    base = ["-n", "2", "--dynpool-workers", "4"]
    variants = [("fixed", [*base, "--dynpool-xdist-balance=fixed"]), ("steal", base)]
    rows = []
    fractions: dict[str, list[float]] = {name: [] for name, _ in variants}
    walls_of: dict[str, list[float]] = {name: [] for name, _ in variants}
    for round_index in range(workspace.settings.rounds):
        shift = round_index % len(variants)
        for name, args in variants[shift:] + variants[:shift]:
            progress(f"xdist uneven: round {round_index + 1}, {name}")
            run = workspace.run(root, args, passed=items)
            walls, fraction = idle_fraction(run.output)
            fractions[name].append(fraction)
            walls_of[name].append(run.wall)
            rows.append([str(round_index + 1), name, f"{run.wall:.2f}", walls, f"{fraction:.1%}"])
    lines = [
        f"### 8c. Uneven durations under pytest-xdist: {items} sleeps (7 in 8 of 50 ms, "
        f"1 in 8 of {long:g} s, seeded), one job of cap 8, -n 2 --dynpool-workers 4",
        "",
        table(["round", "balance", "wall s", "pooled wall per worker", "idle fraction"], rows, "l"),
        "",
        "Idle fraction: 1 - mean / slowest of the workers' pooled walls, the share of the "
        "workers' time (up to the slowest one's end) spent done and waiting. fixed: items stay "
        "in the worker they were sent to up front; steal (the default): a worker whose own "
        "items have all started takes the other's unstarted ones. Worst round: "
        + ", ".join(f"{name} {max(fractions[name]):.1%}" for name, _ in variants)
        + "; median wall: "
        + ", ".join(
            f"{name} {sorted(walls_of[name])[len(walls_of[name]) // 2]:.2f} s"
            for name, _ in variants
        )
        + ".",
    ]
    return "\n".join(lines)


def run_balance(workspace: Workspace) -> str:
    """Only what the balance changes: 8c (idle) and 8b' (the claims' cost)."""
    return run_uneven(workspace) + "\n\n" + run_overhead(workspace)


def run(workspace: Workspace) -> str:
    return run_mixed(workspace) + "\n\n" + run_overhead(workspace) + "\n\n" + run_uneven(workspace)
