"""Run the benchmarks and print one markdown table per scenario.

    python -m benchmarks                  # all seven scenarios, a few minutes on 2 cores
    python -m benchmarks --smoke          # every scenario at a tiny size, seconds (CI)
    python -m benchmarks --only capped peers --rounds 5

Progress goes to stderr; stdout is markdown only, ready to paste into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from . import backends, capped, overhead, peers, scale, scopes, uneven, xdist_mixed
from .common import Settings, Workspace, prime
from .server import LatencyServer

SCENARIOS = (
    "capped",
    "peers",
    "overhead",
    "scale",
    "uneven",
    "scopes",
    "backends",
    "xdist",
    "xdist-balance",
)


def machine() -> str:
    versions = []
    for package in ("pytest", "pytest-xdist", "pytest-dynpool"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"Machine: {cores} cores usable ({os.cpu_count()} CPUs), {platform.machine()}, "
        f"{platform.system()}; Python {platform.python_version()}; "
        + ", ".join(versions)
        + f"; {load_average()} at the start"
    )


def load_average() -> str:
    """The 1-minute load average: other processes skew wall times, so the tables say it."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return f"load average {os.getloadavg()[0]:.2f}"


def run_capped_and_peers(selected: Sequence[str], settings: Settings, pycache: Path) -> list[str]:
    """Scenarios 1 and 2 share one suite, one server, and the dynpool run."""
    with Workspace("dynpool-bench-capped-", settings, pycache) as workspace:
        suite = capped.write_suite(workspace)
        workspace.warm_up(suite.root)
        with LatencyServer(suite.latency) as server:
            dynpool = capped.run_dynpool(workspace, suite, server)
            tables = [capped.format_table(suite, dynpool)] if "capped" in selected else []
            if "peers" in selected:
                others = peers.run_peers(workspace, suite, server)
                tables.append(peers.format_table(suite, dynpool, others))
    return tables


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="pytest-dynpool benchmarks (markdown tables)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round (CI)")
    parser.add_argument(
        "--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="scenarios to run"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the overhead runs (3)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.smoke:
        args.rounds = 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(smoke=args.smoke, rounds=args.rounds)
    selected: list[str] = args.only
    started = time.perf_counter()
    tables = [machine()]
    with tempfile.TemporaryDirectory(prefix="dynpool-bench-pycache-") as cache:
        pycache = Path(cache)
        prime(settings, pycache)
        if "capped" in selected or "peers" in selected:
            tables += run_capped_and_peers(selected, settings, pycache)
        for name, module in (
            ("overhead", overhead),
            ("scale", scale),
            ("uneven", uneven),
            ("scopes", scopes),
            ("xdist", xdist_mixed),
        ):
            if name in selected:
                with Workspace(f"dynpool-bench-{name}-", settings, pycache) as workspace:
                    tables.append(module.run(workspace))
        if "xdist-balance" in selected:
            with Workspace("dynpool-bench-balance-", settings, pycache) as workspace:
                tables.append(xdist_mixed.run_balance(workspace))
        if "backends" in selected:
            tables.append(backends.run(settings))
    size = "smoke sizes (figures mean nothing)" if settings.smoke else "full sizes"
    elapsed = time.perf_counter() - started
    tables.append(
        f"All selected scenarios took {elapsed:.0f} s ({size}); {load_average()} at the end."
    )
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
