"""Scenario 3: what the plugin costs per test, on trivial CPU-only tests.

The worst case for pytest-dynpool: tests that do no I/O, so threads cannot win anything
and only the plugin's bookkeeping (and the GIL changing hands) shows. For each size the
suite is generated twice, with a module-level ``pytestmark = pytest.mark.dynpool(K)``
(K cycling through 2, 4, 8) and with no marker at all, and these run alternating, with the
order rotated every round:

    dynpool   marked suite,   plugin on,  --dynpool-workers 4
    plain     marked suite,   -p no:dynpool (plain pytest, serial)
    unmarked  unmarked suite, plugin on,  --dynpool-workers 4 (must cost nothing)
    startup   one unmarked test, -p no:dynpool (interpreter and pytest start-up)
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .common import PLAIN, RunResult, Workspace, progress, ratio, split_counts, table

CAPS = (2, 4, 8)
WORKERS = 4
FILES = 20
PARAMS_SHARE = 4
"""One test in this many per module is an item of a parametrized function."""


@dataclass(frozen=True)
class Variant:
    name: str
    suite: str
    args: tuple[str, ...]


VARIANTS = (
    Variant("dynpool", "marked", ("--dynpool-workers", str(WORKERS))),
    Variant("plain", "marked", PLAIN),
    # --dynpool-workers doubles as a check that the plugin is loaded.
    Variant("unmarked", "unmarked", ("--dynpool-workers", str(WORKERS))),
    Variant("startup", "startup", PLAIN),
)


@dataclass
class Timings:
    runs: list[RunResult] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(run.wall for run in self.runs)

    @property
    def fastest(self) -> float:
        return min(run.wall for run in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(run.cpu for run in self.runs)


def module_source(count: int, cap: int | None) -> str:
    """A test module with ``count`` trivial items: plain functions and one parametrized one."""
    params = count // PARAMS_SHARE
    lines = ["import pytest", ""]
    if cap is not None:
        lines += [f"pytestmark = pytest.mark.dynpool(max_concurrency={cap})", ""]
    for index in range(count - params):
        lines += ["", f"def test_plain_{index}():", "    assert 1 + 1 == 2", ""]
    if params:
        lines += ["", f"@pytest.mark.parametrize('value', range({params}))"]
        lines += ["def test_param(value):", "    assert 1 + 1 == 2", ""]
    return "\n".join(lines)


def write_suite(workspace: Workspace, name: str, tests: int, marked: bool) -> Path:
    root = workspace.new_suite(name)
    for index, count in enumerate(split_counts(tests, min(FILES, tests))):
        cap = CAPS[index % len(CAPS)] if marked else None
        (root / f"test_bench_{index:03d}.py").write_text(module_source(count, cap), "utf-8")
    return root


def measure(workspace: Workspace, tests: int, rounds: int) -> dict[str, Timings]:
    suites = {
        "marked": (write_suite(workspace, f"marked-{tests}", tests, marked=True), tests),
        "unmarked": (write_suite(workspace, f"unmarked-{tests}", tests, marked=False), tests),
        "startup": (write_suite(workspace, f"startup-{tests}", 1, marked=False), 1),
    }
    for root, _ in suites.values():
        workspace.warm_up(root)
    results = {variant.name: Timings() for variant in VARIANTS}
    for round_index in range(rounds):
        shift = round_index % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            root, count = suites[variant.suite]
            run = workspace.run(root, variant.args, passed=count)
            results[variant.name].runs.append(run)
            progress(f"overhead: {tests} tests, {variant.name}, {run.wall:.2f}s")
    return results


def rows_for(tests: int, results: dict[str, Timings]) -> list[list[str]]:
    plain, startup = results["plain"], results["startup"]
    plain_net = plain.median - startup.median
    rows = []
    for name in ("dynpool", "plain", "unmarked"):
        timings = results[name]
        net = timings.median - startup.median
        rows.append(
            [
                f"{tests:,}",
                name,
                f"{timings.median:.2f}",
                ratio(timings.median, plain.median),
                ratio(timings.fastest, plain.fastest),
                ratio(timings.cpu, plain.cpu),
                f"{net / tests * 1e6:.0f}" if plain_net > 0 else "n/a",
                ratio(net, plain_net) if plain_net > 0 else "n/a",
            ]
        )
    return rows


def run(workspace: Workspace) -> str:
    settings = workspace.settings
    sizes = (50,) if settings.smoke else (2000, 10000)
    rows: list[list[str]] = []
    startups = []
    for tests in sizes:
        results = measure(workspace, tests, settings.rounds)
        rows += rows_for(tests, results)
        startups.append(f"{results['startup'].median:.2f} s")
    header = ["tests", "variant", "median s", "vs plain", "min vs plain", "CPU vs plain"]
    header += ["net us/test", "net vs plain"]
    lines = [
        f"### 3. Overhead on trivial CPU-only tests ({WORKERS} workers, "
        f"{settings.rounds} rounds, medians)",
        "",
        table(header, rows, "rl"),
        "",
        "dynpool: every module marked, caps 2/4/8, run on the pool; plain: the same suite "
        "with -p no:dynpool; unmarked: no marker, plugin on. min: fastest round of each; "
        "CPU: user + system time of the pytest process; net: minus the start-up of pytest on "
        f"one test (median {', '.join(startups)}).",
    ]
    return "\n".join(lines)
