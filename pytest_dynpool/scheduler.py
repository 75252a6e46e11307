"""Which pooled item runs next: pure bookkeeping, no pytest and no threads.

Items and jobs are plain integers so that the scheduler can be unit- and
property-tested without a pytest session. The executor asks for work whenever
a worker is free and reports completions back.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol


class Scheduler(Protocol):
    """What the executor needs from a scheduling strategy."""

    def next_dispatch(self) -> int | None:
        """Claim the next item to run, or None when nothing may start now."""

    def complete(self, item: int) -> None:
        """Give back the slot of a finished item."""

    @property
    def in_flight(self) -> int:
        """Items dispatched and not yet completed."""

    @property
    def pending(self) -> int:
        """Items not yet dispatched."""


@dataclass
class JobQueue:
    """Run-time state of one job inside the scheduler."""

    cap: int
    first_index: int
    waiting: deque[int] = field(default_factory=deque)
    in_flight: int = 0
    peak: int = 0
    queued_in_heap: bool = False

    def drain_weight(self) -> float:
        # Remaining rounds at full cap: the job that needs most rounds starts first.
        return len(self.waiting) / self.cap

    def runnable(self) -> bool:
        return bool(self.waiting) and self.in_flight < self.cap


class CappedScheduler:
    """Work-conserving dispatch under per-job caps and a pool-wide limit.

    A heap holds each job that could start an item right now, keyed by how long
    the job would take to drain (remaining items / cap), ties by collection
    order. Every operation touches one job, so dispatch costs O(log jobs)
    whatever the number of items.
    """

    def __init__(self, workers: int, caps: list[int], job_of_item: list[int]) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if any(cap < 1 for cap in caps):
            raise ValueError("every cap must be >= 1")
        self.workers = workers
        self.jobs: list[JobQueue] = []
        for job_index, cap in enumerate(caps):
            self.jobs.append(JobQueue(cap=cap, first_index=len(job_of_item) + job_index))
        self._job_of_item = job_of_item
        for item, job_index in enumerate(job_of_item):
            job = self.jobs[job_index]
            job.first_index = min(job.first_index, item)
            job.waiting.append(item)
        self._heap: list[tuple[float, int, int]] = []
        self._in_flight = 0
        self._pending = len(job_of_item)
        self.peak_in_flight = 0
        for job_index in range(len(self.jobs)):
            self._offer(job_index)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def pending(self) -> int:
        return self._pending

    def _offer(self, job_index: int) -> None:
        job = self.jobs[job_index]
        if job.runnable() and not job.queued_in_heap:
            job.queued_in_heap = True
            heapq.heappush(self._heap, (-job.drain_weight(), job.first_index, job_index))

    def next_dispatch(self) -> int | None:
        if self._in_flight >= self.workers or not self._heap:
            return None
        _, _, job_index = heapq.heappop(self._heap)
        job = self.jobs[job_index]
        job.queued_in_heap = False
        item = job.waiting.popleft()
        job.in_flight += 1
        job.peak = max(job.peak, job.in_flight)
        self._in_flight += 1
        self._pending -= 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        self._offer(job_index)
        return item

    def complete(self, item: int) -> None:
        job_index = self._job_of_item[item]
        job = self.jobs[job_index]
        if job.in_flight <= 0:
            raise ValueError(f"item {item} completed but its job has nothing in flight")
        job.in_flight -= 1
        self._in_flight -= 1
        self._offer(job_index)
