"""Before/after: the same generated suites run against two checkouts' venvs, alternating.

    python -m benchmarks.compare_trees BEFORE AFTER            # 5 rounds, full sizes
    python -m benchmarks.compare_trees BEFORE AFTER --rounds 9
    python -m benchmarks.compare_trees BEFORE AFTER --only overhead --rounds 11
    python -m benchmarks.compare_trees BEFORE AFTER --smoke    # seconds; figures mean nothing

BEFORE and AFTER are checkouts, each with its own ``.venv`` (``pip install -e '.[dev]'``),
or the interpreters themselves. Every round runs scenario 1 (the capped I/O suite: wall/LB
and the peaks) and scenario 3 (2,000 trivial marked tests on 4 workers against
``-p no:dynpool``, with the CPU time the plugin adds) once per tree, the tree that goes
first alternating from round to round, so that a busy machine slows both alike. It prints
per figure the medians, the ratio after/before, the per-round paired ratios, and the spread
between rounds of the same tree, which is the noise any after/before ratio has to clear;
and the load average of each round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import capped, overhead
from .common import PLAIN, Settings, Workspace, fail, prime, progress, table
from .server import LatencyServer

OVERHEAD_TESTS = 2000
SMOKE_OVERHEAD_TESTS = 50
TREES = ("before", "after")
SCENARIOS = ("capped", "overhead")


@dataclass(frozen=True)
class Tree:
    """One side of the comparison: its label, interpreter, and where its plugin comes from."""

    label: str
    python: str
    describe: str


@dataclass
class Samples:
    """One figure, one value per round and tree."""

    name: str
    values: dict[str, list[float]] = field(default_factory=lambda: {tree: [] for tree in TREES})

    def add(self, tree: str, value: float) -> None:
        self.values[tree].append(value)


def find_tree(label: str, path: str) -> Tree:
    """A checkout with ``.venv`` or an interpreter; say which plugin and commit it runs."""
    given = Path(path).absolute()  # not resolve(): a venv's python is a symlink to the base one
    python = given / ".venv" / "bin" / "python" if given.is_dir() else given
    if not python.exists():
        sys.exit(f"compare_trees: {label}: no interpreter at {python}; give a checkout with .venv")
    probe = "import pytest, pytest_dynpool; print(pytest_dynpool.__file__, pytest.__version__)"
    # From a neutral directory, as the runs do: ``-c`` would put the current one on sys.path.
    with tempfile.TemporaryDirectory(prefix="dynpool-compare-probe-") as neutral:
        command = [str(python), "-c", probe]
        done = subprocess.run(command, cwd=neutral, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"compare_trees: {label}: {python} cannot import pytest_dynpool:\n{done.stderr}")
    plugin_file, pytest_version = done.stdout.split()
    source = Path(plugin_file).parent.parent
    commit = subprocess.run(
        ["git", "-C", str(source), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    describe = f"{source} ({commit or 'not a git checkout'}), pytest {pytest_version}"
    return Tree(label=label, python=str(python), describe=describe)


def order(round_index: int, trees: Sequence[Tree]) -> list[Tree]:
    """Before first in even rounds, after first in odd ones."""
    return list(trees) if round_index % 2 == 0 else list(reversed(trees))


def load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run_rounds(
    trees: Sequence[Tree], settings: Settings, pycache: Path, only: Sequence[str] = SCENARIOS
) -> tuple[list[Samples], list[float]]:
    caps = sum(job.cap for job in (capped.SMOKE_JOBS if settings.smoke else capped.FULL_JOBS))
    capped_wall = Samples("1. capped: pooled wall s")
    capped_ratio = Samples("1. capped: wall/LB")
    capped_process = Samples("1. capped: process wall s")
    pool_peak = Samples(f"1. capped: peak in flight, pool (caps sum to {caps})")
    server_peaks = Samples("1. capped: sum of per-job peaks at the server")
    dynpool_wall = Samples(f"3. overhead: dynpool wall s ({OVERHEAD_TESTS:,} tests)")
    plain_wall = Samples("3. overhead: plain wall s (-p no:dynpool)")
    vs_plain = Samples("3. overhead: dynpool/plain")
    dynpool_cpu = Samples("3. overhead: dynpool CPU s")
    plain_cpu = Samples("3. overhead: plain CPU s")
    added_cpu = Samples("3. overhead: CPU dynpool - plain s")
    loads = []
    tests = SMOKE_OVERHEAD_TESTS if settings.smoke else OVERHEAD_TESTS
    with Workspace("dynpool-compare-", settings, pycache) as workspace:
        suite = capped.write_suite(workspace)
        marked = overhead.write_suite(workspace, "marked", tests, marked=True)
        for tree in trees:
            workspace.warm_up(suite.root, python=tree.python)
            workspace.warm_up(marked, python=tree.python)
        dynpool_args = ("--dynpool-workers", str(overhead.WORKERS))
        with LatencyServer(suite.latency) as server:
            for round_index in range(settings.rounds):
                loads.append(load())
                for tree in order(round_index, trees):
                    progress(f"round {round_index + 1}: {tree.label}, load {loads[-1]:.1f}")
                    if "capped" in only:
                        result = capped.run_dynpool(workspace, suite, server, python=tree.python)
                        pool = result.run.pool
                        if pool is None:
                            fail("no pool figures", [], result.run.output)
                        capped_wall.add(tree.label, pool.wall)
                        capped_ratio.add(tree.label, pool.ratio)
                        capped_process.add(tree.label, result.run.wall)
                        # run_dynpool already failed the command if a job went over its cap.
                        pool_peak.add(tree.label, pool.peak)
                        server_peaks.add(tree.label, sum(result.traffic.peaks.values()))
                    if "overhead" not in only:
                        continue
                    # Within a tree, dynpool and plain alternate too.
                    variants = [dynpool_args, PLAIN]
                    if round_index % 4 >= 2:
                        variants.reverse()
                    runs = {
                        args: workspace.run(marked, args, passed=tests, python=tree.python)
                        for args in variants
                    }
                    dynpool_wall.add(tree.label, runs[dynpool_args].wall)
                    dynpool_cpu.add(tree.label, runs[dynpool_args].cpu)
                    plain_wall.add(tree.label, runs[PLAIN].wall)
                    vs_plain.add(tree.label, runs[dynpool_args].wall / runs[PLAIN].wall)
                    plain_cpu.add(tree.label, runs[PLAIN].cpu)
                    added_cpu.add(tree.label, runs[dynpool_args].cpu - runs[PLAIN].cpu)
    loads.append(load())
    figures = [capped_ratio, capped_wall, capped_process, pool_peak, server_peaks]
    figures += [dynpool_wall, plain_wall, vs_plain]
    figures += [dynpool_cpu, plain_cpu, added_cpu]
    return [figure for figure in figures if figure.values["before"]], loads


def spread(values: Sequence[float]) -> float:
    """Slowest round over fastest round of one tree, minus 1: the same-tree noise."""
    return max(values) / min(values) - 1 if min(values) > 0 else float("nan")


def same_tree_ratio(values: Sequence[float]) -> float:
    """Median of a tree's even rounds over its odd rounds: an A/A ratio of the same tree."""
    return statistics.median(values[1::2]) / statistics.median(values[0::2])


def summary_rows(figures: Sequence[Samples]) -> list[list[str]]:
    rows = []
    for figure in figures:
        before, after = figure.values["before"], figure.values["after"]
        paired = [a / b for a, b in zip(after, before, strict=True) if b > 0]
        rows.append(
            [
                figure.name,
                f"{statistics.median(before):.3f}",
                f"{statistics.median(after):.3f}",
                f"**{statistics.median(after) / statistics.median(before):.3f}**",
                f"{statistics.median(paired):.3f} ({min(paired):.2f}-{max(paired):.2f})",
                f"{spread(before):.0%} / {spread(after):.0%}",
                f"{same_tree_ratio(before):.3f} / {same_tree_ratio(after):.3f}",
            ]
        )
    return rows


def round_rows(figures: Sequence[Samples], loads: Sequence[float]) -> list[list[str]]:
    rows = []
    for index, start_load in enumerate(loads[:-1]):
        first = "before" if index % 2 == 0 else "after"
        cells = [str(index + 1), f"{start_load:.1f}", first]
        for figure in figures:
            cells.append(
                f"{figure.values['before'][index]:.2f} / {figure.values['after'][index]:.2f}"
            )
        rows.append(cells)
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare_trees",
        description="Scenarios 1 and 3 against two checkouts, alternating (markdown)",
    )
    parser.add_argument("before", help="checkout with .venv (or its python) of the old code")
    parser.add_argument("after", help="checkout with .venv (or its python) of the new code")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per tree (5, at least 2)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 rounds")
    parser.add_argument(
        "--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="scenarios to run"
    )
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be >= 2: one round shows no spread")
    if args.smoke:
        args.rounds = 2
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(smoke=args.smoke, rounds=args.rounds)
    trees = [find_tree("before", args.before), find_tree("after", args.after)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dynpool-compare-pycache-") as cache:
        pycache = Path(cache)
        for tree in trees:
            prime(settings, pycache, python=tree.python)
        figures, loads = run_rounds(trees, settings, pycache, args.only)
    elapsed = time.perf_counter() - started
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    header = ["figure", "before median", "after median", "after/before", "paired (min-max)"]
    header += ["same-tree spread before / after", "A/A before / after"]
    per_round = ["round", "load", "first", *(figure.name for figure in figures)]
    lines = [
        f"### Before/after, {settings.rounds} rounds per tree, alternating"
        + (" (smoke sizes: figures mean nothing)" if settings.smoke else ""),
        "",
        *(f"- {tree.label}: {tree.describe}" for tree in trees),
        f"- {cores} cores usable; 1-minute load average per round "
        f"{min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f}); "
        f"{elapsed:.0f} s in all",
        "",
        table(header, summary_rows(figures), "l"),
        "",
        "after/before: ratio of the medians; paired: the ratio within each round (both trees "
        "ran back to back); same-tree spread: a tree's slowest round over its fastest, minus 1; "
        "A/A: a tree's median of rounds 2, 4, ... over its median of rounds 1, 3, ... (the "
        "ratio two runs of the same code show). Lower is better for every figure.",
        "",
        "Per round (before / after):",
        "",
        table(per_round, round_rows(figures, loads), "rrl"),
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
