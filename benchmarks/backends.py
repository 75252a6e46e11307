"""Scenario "backends": what a shared limits store costs, and what sharding gains.

1. Acquire + release of one slot, one after another from one thread: median and
   p99 per store (memory, SQLite in a temporary file, a real local Redis).
2. The capped suite of ``shards.py`` run as one process with each store, and as
   four shards at once sharing each store (``shards.py``).

Redis figures need ``redis-server`` (``apt-get install redis-server``); without
it their rows say so and the rest still runs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pytest_dynpool.backends import LimitsBackend, open_backend

from .common import Settings, progress, table
from .redis_server import RedisMissing, RedisServer


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
            return format_latency(latencies(settings, directory, redis_url))
        finally:
            server.stop()
