"""Scenario "backends": what a shared limits store costs, and what sharding gains.

1. Acquire + release of one slot, one after another from one thread: median and
   p99 per store (memory, SQLite in a temporary file, a real local Redis).
2. The capped suite of ``shards.py`` run as one process with each store, and as
   four shards at once sharing each store (``shards.py``).

Redis figures need ``redis-server`` (``apt-get install redis-server``); without
it their rows say so and the rest still runs.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pytest_dynpool.backends import LimitsBackend, open_backend

from .common import Settings, progress, ratio, table
from .redis_server import RedisMissing, RedisServer
from .server import LatencyServer
from .shards import CAPS, RATE_PER_SECOND, RATED_CAP, RATED_JOB, start_shards, write_suite

WAITS_RE = re.compile(r"waits for the store: (\d+), longest ([\d.]+) s, mean ([\d.]+) s")


@dataclass(frozen=True)
class Latency:
    store: str
    count: int
    median_us: float
    p99_us: float


def measure_latency(backend: LimitsBackend, count: int) -> tuple[float, float]:
    """Median and p99 (microseconds) of acquire + release, one slot at a time."""
    job = f"bench-{uuid.uuid4().hex[:8]}"
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        lease = backend.acquire(job, 1)
        if lease is None:
            raise RuntimeError("benchmarks: a free slot was refused")
        backend.release(lease)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99


def latencies(settings: Settings, directory: Path, redis_url: str | None) -> list[Latency | str]:
    count = 50 if settings.smoke else 3000
    stores = {"memory": "memory", "sqlite": f"sqlite://{directory / 'latency.db'}"}
    if redis_url is not None:
        stores["redis"] = redis_url
    rows: list[Latency | str] = []
    for name, url in stores.items():
        progress(f"backends: acquire + release x{count} on {name}")
        backend = open_backend(url, f"bench-{uuid.uuid4().hex[:8]}")
        try:
            median, p99 = measure_latency(backend, count)
        finally:
            backend.close()
        rows.append(Latency(name, count, median, p99))
    if redis_url is None:
        rows.append("redis")
    return rows


def format_latency(rows: list[Latency | str]) -> str:
    lines = []
    for row in rows:
        if isinstance(row, str):
            lines.append((row, "-", "not measured: redis-server missing", "-"))
        else:
            lines.append((row.store, str(row.count), f"{row.median_us:.0f}", f"{row.p99_us:.0f}"))
    header = ("store", "acquire+release pairs", "median us", "p99 us")
    return "### Backends: acquire + release of one slot\n\n" + table(header, lines, "l")


@dataclass(frozen=True)
class SuiteRun:
    store: str
    processes: int
    wall: float
    peaks: dict[str, int]
    rated_span: float
    # Per shard: (longest, mean) seconds waited for the store; None: it never waited.
    waits: list[tuple[float, float] | None]


def run_suite(
    settings: Settings, directory: Path, store: str, url: str, processes: int
) -> SuiteRun:
    """The shards suite as ``processes`` pytest processes started at once on one store."""
    items, rated = (4, 8) if settings.smoke else (24, 60)
    suite = write_suite(directory / f"suite-{store}-{processes}", items, rated)
    progress(f"backends: the capped suite, {processes} process(es) on {store}")
    latency = 0.02 if settings.smoke else 0.1
    with LatencyServer(latency) as server:
        started = time.perf_counter()
        shards = start_shards(
            suite, server.port, url, f"bench-{uuid.uuid4().hex[:8]}", shards=processes
        )
        codes = [shard.wait() for shard in shards]
        wall = time.perf_counter() - started
        traffic = server.take_traffic()
    for shard, code in zip(shards, codes, strict=True):
        if code != 0:
            raise SystemExit(f"benchmarks: shard {shard.index} exited {code}:\n{shard.output}")
    waits: list[tuple[float, float] | None] = []
    for shard in shards:
        found = WAITS_RE.search(shard.output)
        waits.append((float(found[2]), float(found[3])) if found else None)
    arrivals = traffic.arrivals[RATED_JOB]
    return SuiteRun(store, processes, wall, traffic.peaks, max(arrivals) - min(arrivals), waits)


def format_suites(runs: list[SuiteRun], rated_items: int) -> str:
    base = next(run.wall for run in runs if run.store == "memory" and run.processes == 1)
    ideal_span = (rated_items - RATED_CAP) / RATE_PER_SECOND
    rows = []
    for run in runs:
        peaks = " / ".join(str(run.peaks.get(job, 0)) for job in [*CAPS, RATED_JOB])
        waits = ", ".join(
            "-" if wait is None else f"{wait[0]:.2f}/{wait[1]:.2f}" for wait in run.waits
        )
        rows.append(
            (
                run.store,
                str(run.processes),
                f"{run.wall:.2f}",
                ratio(run.wall, base),
                peaks,
                f"{run.rated_span:.2f} ({run.rated_span / ideal_span:.2f}x)",
                waits,
            )
        )
    caps = " / ".join(str(cap) for cap in [*CAPS.values(), RATED_CAP])
    header = (
        "store",
        "processes",
        "wall s",
        "vs memory, 1 process",
        f"server peaks (caps {caps})",
        f"rated span s (vs {ideal_span:.2f})",
        "longest/mean store wait s, per process",
    )
    return "### Backends: the capped suite, one process and four shards at once\n\n" + table(
        header, rows, "l"
    )


def run(settings: Settings) -> str:
    with tempfile.TemporaryDirectory(prefix="dynpool-bench-backends-") as tmp:
        directory = Path(tmp)
        server = RedisServer(directory)
        try:
            server.start()
            redis_url: str | None = server.url
        except RedisMissing as missing:
            progress(f"backends: {missing}; Redis rows are skipped")
            redis_url = None
        try:
            tables = [format_latency(latencies(settings, directory, redis_url))]
            stores = {"memory": "memory", "sqlite": f"sqlite://{directory / 'suite.db'}"}
            if redis_url is not None:
                stores["redis"] = redis_url
            runs = [
                run_suite(settings, directory, store, url, processes)
                for processes in (1, 4)
                for store, url in stores.items()
            ]
            tables.append(format_suites(runs, 8 if settings.smoke else 60))
            return "\n\n".join(tables)
        finally:
            server.stop()
