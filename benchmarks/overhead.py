"""Per-test overhead of pytest-dynpool against plain pytest, on trivial tests.

Generates a suite of N trivial tests into a temporary directory, twice: once with
every module marked ``@pytest.mark.dynpool(max_concurrency=...)`` and once with
no marker at all. Then runs, alternating, several rounds of:

    dynpool   marked suite,   plugin on,  --dynpool-workers W
    plain     marked suite,   -p no:dynpool (plain pytest, serial)
    unmarked  unmarked suite, plugin on,  --dynpool-workers W
    startup   one unmarked test, -p no:dynpool (interpreter + pytest start-up)

and prints the median wall times and the ratios to plain as a markdown table,
both raw and "net" (with the start-up median subtracted, i.e. per-test cost only).
Every run must exit 0 and report exactly N passed; otherwise the script fails.

    python benchmarks/overhead.py [--tests 2000] [--workers 4] [--rounds 5] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if sys.platform != "win32":
    import resource

if TYPE_CHECKING:
    from collections.abc import Sequence

CAPS = (2, 4, 8)
"""Module-level caps, cycled over the generated files."""

PARAMS_PER_MODULE_SHARE = 4
"""One test in this many per module is an item of a parametrized function."""

ENV_TO_DROP = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTHONDONTWRITEBYTECODE",
)
"""Environment that would change what the subprocess pytest runs, or how fast it starts.

Without bytecode caching every run would re-parse and assertion-rewrite the whole
generated suite: a cost shared by all variants that would only dilute the ratios.
Bytecode goes to a cache under the temporary directory instead (``PYTHONPYCACHEPREFIX``).
"""

PYTEST_INI = """\
[pytest]
markers =
    dynpool: registered here too, so that -p no:dynpool runs warn about nothing
"""

PASSED_RE = re.compile(r"\b(\d+) passed\b")
BAD_OUTCOME_RE = re.compile(r"\b\d+ (failed|errors?|skipped|xfailed|xpassed|deselected)\b")


@dataclass(frozen=True)
class Variant:
    """One way of running the suite: which copy, and which extra pytest arguments."""

    name: str
    description: str
    suite: str
    """Which generated copy: ``marked``, ``unmarked`` or ``startup`` (one unmarked test)."""
    extra_args: tuple[str, ...]


@dataclass
class Timings:
    """Wall and CPU (user + system) times of one variant, in seconds, one per round."""

    variant: Variant
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else None


def children_cpu_seconds() -> float | None:
    """User + system time of all waited-for children so far (None where unknown)."""
    if sys.platform == "win32":
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def split_counts(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal non-negative counts."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def module_source(count: int, cap: int | None) -> str:
    """A test module with ``count`` trivial items: plain functions and one parametrized one."""
    params = count // PARAMS_PER_MODULE_SHARE
    functions = count - params
    lines = ["import pytest", ""]
    if cap is not None:
        lines += [f"pytestmark = pytest.mark.dynpool(max_concurrency={cap})", ""]
    for index in range(functions):
        lines += ["", f"def test_plain_{index}() -> None:", "    assert 1 + 1 == 2", ""]
    if params:
        lines += [
            "",
            f"@pytest.mark.parametrize('value', range({params}))",
            "def test_param(value: int) -> None:",
            "    assert 1 + 1 == 2",
            "",
        ]
    return "\n".join(lines)


def generate_suite(root: Path, tests: int, files: int, marked: bool) -> None:
    """Write ``files`` test modules holding ``tests`` items in all, plus a bare pytest.ini."""
    root.mkdir(parents=True)
    # An own, empty config: the suite must not pick up any enclosing project's settings.
    (root / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    for index, count in enumerate(split_counts(tests, files)):
        cap = CAPS[index % len(CAPS)] if marked else None
        path = root / f"test_bench_{index:03d}.py"
        path.write_text(module_source(count, cap), encoding="utf-8")


def subprocess_env(pycache: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ENV_TO_DROP:
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_once(
    suite: Path, variant: Variant, expected: int, env: dict[str, str]
) -> tuple[float, float | None]:
    """Run pytest on ``suite`` once; return its wall and CPU time. Exits loudly on surprises."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *variant.extra_args,
        "--rootdir",
        str(suite),
        str(suite),
    ]
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=suite, env=env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    cpu_after = children_cpu_seconds()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    output = completed.stdout + completed.stderr
    passed = PASSED_RE.findall(output)
    bad = BAD_OUTCOME_RE.search(output)
    if completed.returncode != 0 or passed[-1:] != [str(expected)] or bad is not None:
        tail = "\n".join(output.splitlines()[-30:])
        sys.exit(
            f"overhead.py: variant {variant.name!r} did not pass cleanly: exit code "
            f"{completed.returncode}, expected '{expected} passed'.\n"
            f"command: {' '.join(command)}\n--- last lines of output ---\n{tail}"
        )
    return elapsed, cpu


def format_table(
    results: Sequence[Timings],
    baseline: Timings,
    startup: Timings,
    tests: int,
    workers: int,
    rounds: int,
) -> str:
    """Markdown table; "net" figures subtract the startup of plain pytest on one test."""
    lines = [
        f"pytest-dynpool overhead: {tests} trivial tests, {workers} workers, "
        f"{rounds} round(s), Python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
        "",
        "| variant | what runs | median s | ratio to plain | min s | min ratio "
        "| CPU s | CPU ratio | net us/test | net ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    baseline_net = baseline.median - startup.median
    baseline_cpu = baseline.cpu_median
    for timings in results:
        ratio = timings.median / baseline.median
        min_ratio = min(timings.seconds) / min(baseline.seconds)
        cpu = timings.cpu_median
        if cpu is not None and baseline_cpu:
            cpu_cells = f"{cpu:.3f} | {cpu / baseline_cpu:.2f}x"
        else:
            cpu_cells = "n/a | n/a"
        net = timings.median - startup.median
        if baseline_net > 0:
            net_cells = f"{net / tests * 1e6:.0f} | {net / baseline_net:.2f}x"
        else:
            net_cells = "n/a | n/a"
        lines.append(
            f"| {timings.variant.name} | {timings.variant.description} "
            f"| {timings.median:.3f} | {ratio:.2f}x | {min(timings.seconds):.3f} "
            f"| {min_ratio:.2f}x | {cpu_cells} | {net_cells} |"
        )
    lines += [
        "",
        f"startup (plain pytest, one test): median {startup.median:.3f}s, "
        f"min {min(startup.seconds):.3f}s; net = median - startup. "
        "CPU = user + system time of the pytest process (median).",
    ]
    if baseline_net <= 0:
        lines.append("net figures n/a: start-up noise exceeds the tests' time; use more --tests.")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tests", type=int, default=2000, help="number of tests (2000)")
    parser.add_argument("--files", type=int, default=20, help="number of test files (20)")
    parser.add_argument("--workers", type=int, default=4, help="--dynpool-workers (4)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each variant (5)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run for CI: 50 tests, 5 files, 1 round"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.tests, args.files, args.rounds = 50, 5, 1
    if args.tests < 1 or args.files < 1 or args.workers < 1 or args.rounds < 1:
        parser.error("--tests, --files, --workers and --rounds must all be >= 1")
    args.files = min(args.files, args.tests)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tests: int = args.tests
    workers: int = args.workers
    rounds: int = args.rounds
    pool_args = ("--dynpool-workers", str(workers))
    plain_args = ("-p", "no:dynpool")
    variants = [
        Variant("dynpool", f"marked, --dynpool-workers {workers}", "marked", pool_args),
        Variant("plain", "marked, -p no:dynpool", "marked", plain_args),
        # --dynpool-workers doubles as a check that the plugin is loaded.
        Variant(
            "unmarked", f"no markers, plugin on, --dynpool-workers {workers}", "unmarked", pool_args
        ),
        Variant("startup", "one unmarked test, -p no:dynpool", "startup", plain_args),
    ]
    sizes = {"marked": tests, "unmarked": tests, "startup": 1}
    results = {variant.name: Timings(variant) for variant in variants}
    with tempfile.TemporaryDirectory(prefix="dynpool-overhead-") as tmp:
        env = subprocess_env(Path(tmp) / "pycache")
        suites = {name: Path(tmp) / name for name in sizes}
        generate_suite(suites["marked"], tests, args.files, marked=True)
        generate_suite(suites["unmarked"], tests, args.files, marked=False)
        generate_suite(suites["startup"], 1, 1, marked=False)
        for variant in variants:  # warm-up, untimed: imports, page cache, bytecode
            run_once(suites[variant.suite], variant, sizes[variant.suite], env)
        for round_index in range(rounds):
            # ABAB...: alternate variants, rotating the order so none always goes first.
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                seconds, cpu = run_once(suites[variant.suite], variant, sizes[variant.suite], env)
                results[variant.name].seconds.append(seconds)
                if cpu is not None:
                    results[variant.name].cpu_seconds.append(cpu)
                cpu_text = "" if cpu is None else f"  cpu {cpu:7.3f}s"
                print(
                    f"round {round_index + 1}/{rounds} {variant.name:<8} {seconds:7.3f}s{cpu_text}",
                    file=sys.stderr,
                    flush=True,
                )
    ordered = [results[variant.name] for variant in variants[:3]]
    print(format_table(ordered, results["plain"], results["startup"], tests, workers, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
