"""Helpers of the scheduler's tests: a fake clock, workloads, and a run replayed on the clock."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from hypothesis import strategies as st

from pytest_dynpool.order import Order
from pytest_dynpool.scheduler import CappedScheduler


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drain(scheduler: CappedScheduler) -> list[int]:
    started = []
    while (item := scheduler.next_dispatch()) is not None:
        started.append(item)
    return started


@st.composite
def workloads(draw: st.DrawFn) -> tuple[int, list[int], list[int], int]:
    workers = draw(st.integers(1, 8))
    caps = draw(st.lists(st.integers(1, 10), min_size=1, max_size=6))
    job_of_item = draw(st.lists(st.integers(0, len(caps) - 1), min_size=0, max_size=60))
    seed = draw(st.integers(0, 2**32 - 1))
    return workers, caps, job_of_item, seed


def makespan(
    workers: int,
    caps: list[int],
    durations: list[float],
    job_of_item: list[int],
    order: Order,
    known: bool = True,
    learn: bool = True,
    groups: Sequence[int] = (),
) -> float:
    """Replay a run on a fake clock with exact durations: when the last item ends.

    ``learn``: each completion tells the scheduler the item's duration, as the pool does.
    """
    clock = FakeClock()
    scheduler = CappedScheduler(
        workers,
        caps,
        job_of_item,
        order=order,
        known_seconds=durations if known else (),
        clock=clock,
        group_of_item=groups,
    )
    running: list[tuple[float, int]] = []
    while True:
        while (item := scheduler.next_dispatch()) is not None:
            heapq.heappush(running, (clock.now + durations[item], item))
        if not running:
            return clock.now
        clock.now, item = heapq.heappop(running)
        scheduler.complete(item, durations[item] if learn else None)
