"""Must show: caps and rates hold across four pytest processes sharing one store.

Four shards of one suite run at once against one server that counts requests in
flight per endpoint over all processes. The server's ``meet`` gate holds an
endpoint's requests until ``cap`` of them are in flight together, which proves
the cap was reached without timing anything; its peak counter proves it was
never passed. With ``memory`` (each process alone) the same shards pass the caps:
the control. Every process is bounded in time (``shards.SHARD_SECONDS``).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from benchmarks.server import LatencyServer, Traffic
from benchmarks.shards import (
    CAPS,
    RATE_PER_SECOND,
    RATED_CAP,
    RATED_JOB,
    Shard,
    start_shards,
    write_suite,
)

from .redis_server import RedisServer

SHARED = ["sqlite", "redis"]
# How long a gate may hold a request when a cap is broken; never reached when it holds.
GATE_SECONDS = 20.0


def backend_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path, query: str = "") -> str:
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url + query
    if kind == "sqlite":
        return f"sqlite://{tmp_path / 'limits.db'}{query}"
    return "memory"


def finish(shards: list[Shard]) -> list[int]:
    codes = [shard.wait() for shard in shards]
    for shard, code in zip(shards, codes, strict=True):
        if code != 0:
            print(f"--- shard {shard.index} exit {code} ---\n{shard.output[-3000:]}")
    return codes


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals in any window of one second (windows start at an arrival)."""
    return max(
        (sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals), default=0
    )


def run_four_shards(tmp_path: Path, url: str, meet: dict[str, int]) -> Traffic:
    suite = write_suite(tmp_path / "suite")
    with LatencyServer(0.02, meet=meet, gate_seconds=GATE_SECONDS) as server:
        shards = start_shards(suite, server.port, url, f"shards-{uuid.uuid4().hex[:8]}")
        assert finish(shards) == [0, 0, 0, 0]
        return server.take_traffic()


@pytest.mark.parametrize("kind", SHARED)
def test_four_shards_reach_each_cap_and_never_pass_it(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    traffic = run_four_shards(tmp_path, backend_url(kind, request, tmp_path), meet=dict(CAPS))
    assert {job: traffic.peaks[job] for job in CAPS} == CAPS
    assert traffic.peaks[RATED_JOB] <= RATED_CAP
    # GCRA across processes: no second holds more than rate + burst of the rated job.
    assert busiest_second(traffic.arrivals[RATED_JOB]) <= RATE_PER_SECOND + RATED_CAP


def test_memory_shards_pass_the_caps_the_control(tmp_path: Path) -> None:
    over = {job: cap + 1 for job, cap in CAPS.items()}  # met only if a cap is passed
    traffic = run_four_shards(tmp_path, "memory", meet=over)
    assert all(traffic.peaks[job] > cap for job, cap in CAPS.items()), traffic.peaks
    assert busiest_second(traffic.arrivals[RATED_JOB]) > RATE_PER_SECOND + RATED_CAP
