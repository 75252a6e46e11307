"""Which pooled item runs next: pure bookkeeping, no pytest and no threads.

Items and jobs are plain integers so that the scheduler can be unit- and
property-tested without a pytest session. The executor asks for work whenever
a worker is free and reports completions back. A job may have a rate of test
starts (a token bucket on an injectable clock) and an effective cap that the
adaptive mode moves at run time (``set_cap``).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .limits import Clock, TokenBucket


class Scheduler(Protocol):
    """What the executor needs from a scheduling strategy."""

    def next_dispatch(self) -> int | None:
        """Claim the next item to run, or None when nothing may start now."""

    def complete(self, item: int) -> None:
        """Give back the slot of a finished item."""

    def set_cap(self, job_index: int, cap: int) -> None:
        """Change a job's effective cap (adaptive mode)."""

    def seconds_until_ready(self) -> float | None:
        """How long a free worker may sleep before a rate-limited job can start; None: no limit."""

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
    starts: TokenBucket | None = None
    rate_blocked: bool = False

    def drain_weight(self) -> float:
        # Remaining rounds at full cap: the job that needs most rounds starts first.
        return len(self.waiting) / self.cap

    def runnable(self) -> bool:
        return bool(self.waiting) and self.in_flight < self.cap and not self.rate_blocked


class CappedScheduler:
    """Work-conserving dispatch under per-job caps and a pool-wide limit.

    A heap holds each job that could start an item right now, keyed by how long
    the job would take to drain (remaining items / cap), ties by collection
    order. Every operation touches one job, so dispatch costs O(log jobs)
    whatever the number of items. A job out of start tokens leaves the heap for
    a second heap keyed by the time its next token comes; ``seconds_until_ready``
    tells a waiting worker how long it may sleep.
    """

    def __init__(
        self,
        workers: int,
        caps: list[int],
        job_of_item: list[int],
        rates: Sequence[float | None] = (),
        clock: Clock = time.monotonic,
    ) -> None:
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
        self._clock = clock
        for job, per_second in zip(self.jobs, rates, strict=False):
            if per_second is not None:
                job.starts = TokenBucket(per_second, burst=job.cap, clock=clock)
        self._heap: list[tuple[float, int, int]] = []
        self._rate_blocked: list[tuple[float, int]] = []
        self._in_flight = 0
        self._pending = len(job_of_item)
        self.peak_in_flight = 0
        # (item, pool peak, job peak) before the last dispatch, for ``put_back``.
        self._undo_peaks: tuple[int, int, int] | None = None
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

    def _unblock_due(self, now: float) -> None:
        while self._rate_blocked and self._rate_blocked[0][0] <= now:
            _, job_index = heapq.heappop(self._rate_blocked)
            self.jobs[job_index].rate_blocked = False
            self._offer(job_index)

    def _pop_startable(self) -> int | None:
        """The first job on the heap that may start an item now, with its start token."""
        now = self._clock()
        self._unblock_due(now)
        while self._heap:
            _, _, job_index = heapq.heappop(self._heap)
            job = self.jobs[job_index]
            job.queued_in_heap = False
            if not job.runnable():
                continue  # its cap went down while it waited on the heap
            wait = job.starts.take() if job.starts is not None else 0.0
            if wait > 0.0:
                job.rate_blocked = True
                heapq.heappush(self._rate_blocked, (now + wait, job_index))
                continue
            return job_index
        return None

    def seconds_until_ready(self) -> float | None:
        """How long until a rate-limited job gets its next start token; None if none waits."""
        if not self._rate_blocked:
            return None
        return max(0.0, self._rate_blocked[0][0] - self._clock())

    def put_back(self, item: int, defer_seconds: float) -> None:
        """Undo the ``next_dispatch`` that returned ``item`` and park its job.

        For a shared limits store that refused the job a slot: the item goes
        back to the head of its job, and the job waits ``defer_seconds`` as a
        job waiting for a start token does, while other jobs run on.
        """
        job_index = self._job_of_item[item]
        job = self.jobs[job_index]
        if self._undo_peaks is None or self._undo_peaks[0] != item:
            raise ValueError(f"item {item} is not the last one dispatched")
        _, self.peak_in_flight, job.peak = self._undo_peaks
        self._undo_peaks = None
        job.waiting.appendleft(item)
        job.in_flight -= 1
        self._in_flight -= 1
        self._pending += 1
        job.rate_blocked = True
        heapq.heappush(self._rate_blocked, (self._clock() + defer_seconds, job_index))

    def resume(self, job_index: int) -> None:
        """End a job's parking now (the store saw a release); a stale heap entry is harmless."""
        job = self.jobs[job_index]
        if job.rate_blocked:
            job.rate_blocked = False
            self._offer(job_index)

    def set_cap(self, job_index: int, cap: int) -> None:
        """Change a job's effective cap; items in flight above it are not stopped."""
        if cap < 1:
            raise ValueError("a cap must be >= 1")
        self.jobs[job_index].cap = cap
        self._offer(job_index)

    def next_dispatch(self) -> int | None:
        if self._in_flight >= self.workers or not (self._heap or self._rate_blocked):
            return None
        job_index = self._pop_startable()
        if job_index is None:
            return None
        job = self.jobs[job_index]
        item = job.waiting.popleft()
        self._undo_peaks = (item, self.peak_in_flight, job.peak)
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
