"""Which pooled item runs next: pure bookkeeping, no pytest and no threads.

Items and jobs are plain integers so that the scheduler can be unit- and
property-tested without a pytest session. The executor asks for work whenever
a worker is free and reports completions back. A job may have a rate of test
starts (a token bucket on an injectable clock) and an effective cap that the
adaptive mode moves at run time (``set_cap``).

The order (``Order``) decides which runnable job goes first. By duration, the
default, each item has an expected duration (measured by an earlier run, else
an estimate) and the job with the most remaining work per slot goes first,
its longest items first: a long item collected last no longer ends the run
alone, and a small slow job no longer waits behind a big fast one.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .limits import Clock, TokenBucket
from .order import Order, expected_seconds


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

    def mean_cap(self, job_index: int) -> float:
        """A job's concurrency allowance averaged over the run so far (for the lower bound)."""

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
    work: float = 0.0
    """Expected seconds of the waiting items (duration order only)."""
    # The time integral of the concurrency the job was allowed, max(cap, in flight)
    # within the pool, since the run started; see ``CappedScheduler.mean_cap``.
    allowed_seconds: float = 0.0
    allowed_since: float = 0.0

    def runnable(self) -> bool:
        return bool(self.waiting) and self.in_flight < self.cap and not self.rate_blocked


class CappedScheduler:
    """Work-conserving dispatch under per-job caps and a pool-wide limit.

    A heap holds each job that could start an item right now, keyed by its
    ``Order``: how long the job would take to drain (remaining expected seconds
    per slot, or remaining items per cap), or its next item's collection index;
    ties by collection order. Every operation touches one job, so dispatch costs
    O(log jobs) whatever the number of items. A job out of start tokens leaves
    the heap for a second heap keyed by the time its next token comes;
    ``seconds_until_ready`` tells a waiting worker how long it may sleep.
    """

    def __init__(
        self,
        workers: int,
        caps: list[int],
        job_of_item: list[int],
        rates: Sequence[float | None] = (),
        clock: Clock = time.monotonic,
        order: Order = Order.DURATION,
        known_seconds: Sequence[float | None] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if any(cap < 1 for cap in caps):
            raise ValueError("every cap must be >= 1")
        self.workers = workers
        self.order = order
        self._clock = clock
        started = clock()
        self._started = started
        self.jobs: list[JobQueue] = []
        for job_index, cap in enumerate(caps):
            first = len(job_of_item) + job_index
            self.jobs.append(JobQueue(cap=cap, first_index=first, allowed_since=started))
        self._job_of_item = job_of_item
        self._seconds: list[float] = []
        self._seconds_known = any(seconds is not None for seconds in known_seconds)
        items: Sequence[int] = range(len(job_of_item))
        if order is Order.DURATION:
            self._seconds = expected_seconds(job_of_item, known_seconds)
            # Longest first within each job, ties in collection order.
            items = sorted(items, key=lambda item: -self._seconds[item])
        for item in items:
            job_index = job_of_item[item]
            job = self.jobs[job_index]
            job.first_index = min(job.first_index, item)
            job.waiting.append(item)
            if self._seconds:
                job.work += self._seconds[item]
        self._per_second: list[float | None] = [None] * len(caps)
        for job_index, (job, per_second) in enumerate(zip(self.jobs, rates, strict=False)):
            if per_second is not None:
                job.starts = TokenBucket(per_second, burst=job.cap, clock=clock)
                self._per_second[job_index] = per_second
        self._heap: list[tuple[float, int, int]] = []
        self._rate_blocked: list[tuple[float, int]] = []
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

    def _key(self, job_index: int, job: JobQueue) -> float:
        """Smaller goes first."""
        if self.order is Order.COLLECTION:
            return float(job.waiting[0])
        if self.order is Order.COUNT:
            # Remaining rounds at full cap: the job that needs most rounds starts first.
            return -len(job.waiting) / job.cap
        drain = job.work / min(job.cap, self.workers)
        per_second = self._per_second[job_index]
        if per_second is not None and self._seconds_known:
            # A job held to a rate cannot drain faster than its start tokens come.
            drain = max(drain, len(job.waiting) / per_second)
        return -drain

    def _offer(self, job_index: int) -> None:
        job = self.jobs[job_index]
        if job.runnable() and not job.queued_in_heap:
            job.queued_in_heap = True
            key = self._key(job_index, job)
            heapq.heappush(self._heap, (key, job.first_index, job_index))

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

    def set_cap(self, job_index: int, cap: int) -> None:
        """Change a job's effective cap; items in flight above it are not stopped."""
        if cap < 1:
            raise ValueError("a cap must be >= 1")
        job = self.jobs[job_index]
        self._integrate_allowed(job)
        job.cap = cap
        self._offer(job_index)

    def _allowed(self, job: JobQueue) -> int:
        return min(max(job.cap, job.in_flight), self.workers)

    def _integrate_allowed(self, job: JobQueue) -> None:
        now = self._clock()
        job.allowed_seconds += self._allowed(job) * (now - job.allowed_since)
        job.allowed_since = now

    def mean_cap(self, job_index: int) -> float:
        """The job's concurrency allowance averaged over time since the scheduler started.

        The allowance is its (effective) cap within the pool, or more while items
        started under a higher cap are still in flight. No schedule could have
        done the job's work in less than work / this mean: the lower bound's term
        for an adaptive job, whose cap moved during the run.
        """
        job = self.jobs[job_index]
        self._integrate_allowed(job)
        elapsed = job.allowed_since - self._started
        if elapsed <= 0.0:
            return float(self._allowed(job))
        return job.allowed_seconds / elapsed

    def next_dispatch(self) -> int | None:
        if self._in_flight >= self.workers or not (self._heap or self._rate_blocked):
            return None
        job_index = self._pop_startable()
        if job_index is None:
            return None
        job = self.jobs[job_index]
        item = job.waiting.popleft()
        if self._seconds:
            job.work -= self._seconds[item]
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
        if job.in_flight > job.cap:
            self._integrate_allowed(job)  # the allowance goes down with in flight
        job.in_flight -= 1
        self._in_flight -= 1
        self._offer(job_index)
