"""Which pooled item runs next: pure bookkeeping, no pytest and no threads.

Items and jobs are plain integers so that the scheduler can be unit- and
property-tested without a pytest session. The executor asks for work whenever
a worker is free and reports completions back. A job may have a rate of test
starts (a token bucket on an injectable clock) and an effective cap that the
adaptive mode moves at run time (``set_cap``).

The order (``Order``) decides which runnable job goes first. By duration, the
default, each item has an expected duration (measured by an earlier run, else
its job's median, else the longest seen) and the job with the most remaining work per
slot goes first, its longest items first: a long item collected last no longer
ends the run alone, and a small slow job no longer waits behind a big fast one.
A job's drain is never less than its longest waiting item: few long items
start together instead of one by one. The estimates learn during the run
(``complete`` with the item's seconds, and the time so far of a never-measured
job's item still running), and the first item of each unknown job, then of each
unknown group (test function), starts before the others: on a first run, with
nothing kept, a slow job is found out early instead of last.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from . import clock
from .estimates import Estimates
from .job_queue import Entry, JobQueue
from .limits import Clock, TokenBucket
from .order import Order
from .scheduler_protocol import Scheduler
from .slot_gate import LocalSlotGate, SlotGate

__all__ = ["CappedScheduler", "JobQueue", "LocalSlotGate", "Scheduler", "SlotGate"]


class CappedScheduler:
    """Work-conserving dispatch under per-job caps and a pool-wide limit.

    A heap holds each job that could start an item right now, keyed by its
    ``Order``: how long the job would take to drain (remaining expected seconds
    per slot, or remaining items per cap), or its next item's collection index;
    ties by collection order. Every operation touches one job, so dispatch costs
    O(log jobs) whatever the number of items. A job out of start tokens leaves
    the heap for a second heap keyed by the time its next token comes (so does a
    deferred job); ``seconds_until_ready`` tells a waiting worker how long it may
    sleep.
    """

    def __init__(
        self,
        workers: int,
        caps: list[int],
        job_of_item: list[int],
        rates: Sequence[float | None] = (),
        clock: Clock = clock.monotonic,
        order: Order = Order.DURATION,
        known_seconds: Sequence[float | None] = (),
        group_of_item: Sequence[int] = (),
        held_back: frozenset[int] = frozenset(),
    ) -> None:
        """``held_back``: items not queued; they may start later by ``start_held``
        (another xdist worker's share, stolen once nothing of this one's can start)."""
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
        self._estimates: Estimates | None = None
        if order is Order.DURATION:
            self._estimates = Estimates(
                len(caps), job_of_item, list(known_seconds), group_of_item, held_back
            )
        for item, job_index in enumerate(job_of_item):
            if item in held_back:
                continue
            job = self.jobs[job_index]
            job.first_index = min(job.first_index, item)
            job.left += 1
            if self._estimates is None:
                job.waiting.append(item)
        self._per_second: list[float | None] = [None] * len(caps)
        for job_index, (job, per_second) in enumerate(zip(self.jobs, rates, strict=False)):
            if per_second is not None:
                job.starts = TokenBucket(per_second, burst=job.cap, clock=clock)
                self._per_second[job_index] = per_second
        # Entries: (key, key, first collected item, job, generation). The count and collection
        # orders, and jobs with a known duration, use ``_heap``. Jobs never measured are
        # expected to take one figure per item (``unmeasured_per_item``) that moves as
        # items finish: they wait in ``_unmeasured`` keyed by (probe rank, -items per
        # slot), which that figure scales alike, and, when rated, in ``_unmeasured_rated``
        # by -items per token per second; the best of the three tops goes (``_best_heap``).
        self._heap: list[Entry] = []
        self._unmeasured: list[Entry] = []
        self._unmeasured_rated: list[Entry] = []
        self._parked: list[tuple[float, int, int]] = []  # (until, generation, job)
        self._in_flight = 0
        self._pending = len(job_of_item) - len(held_back)
        self._peak_in_flight = 0
        self._undo_peaks: tuple[int, int, int] | None = None  # of the last dispatch
        self._now = started  # the clock at the last dispatch
        for job_index in range(len(self.jobs)):
            self._offer(job_index)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def job_of(self, item: int) -> int:
        return self._job_of_item[item]

    @property
    def pending(self) -> int:
        return self._pending

    def job_peak(self, job_index: int) -> int:
        return self.jobs[job_index].peak

    @property
    def peak_in_flight(self) -> int:
        return self._peak_in_flight

    def _slots(self, job: JobQueue) -> int:
        return min(job.cap, self.workers)

    def _drain(self, job_index: int, job: JobQueue, estimates: Estimates) -> float:
        """Seconds the job needs at least to run its waiting items (duration order)."""
        # Its work spread over its slots, but no sooner than its longest item can end.
        drain = max(
            estimates.remaining(job_index) / self._slots(job), estimates.longest_waiting(job_index)
        )
        per_second = self._per_second[job_index]
        if per_second is not None and estimates.anything_known:
            # A job held to a rate cannot drain faster than its start tokens come.
            drain = max(drain, job.left / per_second)
        return drain

    def _offer(self, job_index: int) -> None:
        job = self.jobs[job_index]
        if not job.runnable() or job.queued_in_heap:
            return
        job.queued_in_heap = True
        entry = (job.first_index, job_index, job.heap_generation)
        estimates = self._estimates
        if self.order is Order.COLLECTION:
            heapq.heappush(self._heap, (float(job.waiting[0]), 0.0, *entry))
        elif estimates is None:
            # Remaining rounds at full cap: the job that needs most rounds starts first.
            heapq.heappush(self._heap, (-job.left / job.cap, 0.0, *entry))
        elif estimates.is_measured(job_index) or estimates.runs_long(job_index):
            heapq.heappush(self._heap, (-self._drain(job_index, job, estimates), 0.0, *entry))
        else:
            rank = estimates.probe_rank(job_index)
            heapq.heappush(self._unmeasured, (rank, -job.left / self._slots(job), *entry))
            per_second = self._per_second[job_index]
            if per_second is not None:
                heapq.heappush(self._unmeasured_rated, (-job.left / per_second, 0.0, *entry))
        if len(self._heap) + len(self._unmeasured) > 4 * len(self.jobs) + 64:
            self._compact()

    def _refresh(self, job_index: int) -> None:
        """The job's key changed: its heap entries go stale and it is offered again."""
        job = self.jobs[job_index]
        if job.queued_in_heap:
            job.queued_in_heap = False
            job.heap_generation += 1
            self._offer(job_index)

    def _valid(self, entry: Entry) -> bool:
        job = self.jobs[entry[3]]
        return job.queued_in_heap and job.heap_generation == entry[4]

    def _compact(self) -> None:
        """Drop stale entries, so that every heap stays O(jobs) long."""
        for heap in (self._heap, self._unmeasured, self._unmeasured_rated):
            heap[:] = [entry for entry in heap if self._valid(entry)]
            heapq.heapify(heap)

    def _best_heap(self) -> list[Entry] | None:
        """The heap whose top is the job to serve next; stale tops are dropped on the way."""
        for heap in (self._heap, self._unmeasured, self._unmeasured_rated):
            while heap and not self._valid(heap[0]):
                heapq.heappop(heap)
        estimates = self._estimates
        if self._unmeasured and self._unmeasured[0][0] < 2.0:
            return self._unmeasured  # a probe: an unknown group's first item is cheap news
        # (drain as a negative number, first collected item, heap): the smallest goes first.
        candidates: list[tuple[float, int, list[Entry]]] = []
        if self._heap:
            candidates.append((self._heap[0][0], self._heap[0][2], self._heap))
        if self._unmeasured and estimates is not None:
            top = self._unmeasured[0]
            candidates.append((top[1] * estimates.unmeasured_per_item(), top[2], self._unmeasured))
        if self._unmeasured_rated and estimates is not None and estimates.anything_known:
            top = self._unmeasured_rated[0]
            candidates.append((top[0], top[2], self._unmeasured_rated))
        if not candidates:
            return None
        return min(candidates, key=lambda candidate: candidate[:2])[2]

    def _unblock_due(self, now: float) -> None:
        while self._parked and self._parked[0][0] <= now:
            _, generation, job_index = heapq.heappop(self._parked)
            if self.jobs[job_index].park_generation == generation:
                self._unpark(job_index)

    def _park(self, job_index: int, until: float) -> None:
        job = self.jobs[job_index]
        job.parked = True
        job.park_generation += 1
        if until != float("inf"):
            heapq.heappush(self._parked, (until, job.park_generation, job_index))

    def _unpark(self, job_index: int) -> None:
        job = self.jobs[job_index]
        job.parked = False
        job.park_generation += 1
        self._offer(job_index)

    def _pop_startable(self) -> int | None:
        """The first job on the heap that may start an item now, with its start token."""
        now = self._now = self._clock()
        self._unblock_due(now)
        if self._estimates is not None and now >= self._estimates.next_look:
            for job_index in self._estimates.look(now):
                self._refresh(job_index)  # its item in flight ran longer than expected
        while (heap := self._best_heap()) is not None:
            job_index = heapq.heappop(heap)[3]
            job = self.jobs[job_index]
            job.queued_in_heap = False
            job.heap_generation += 1  # its entries in the other heaps are stale now
            if not job.runnable():
                continue  # its cap went down, or it was parked, while it waited on the heap
            wait = job.starts.take() if job.starts is not None else 0.0
            if wait > 0.0:
                self._park(job_index, now + wait)
                continue
            return job_index
        return None

    def seconds_until_ready(self) -> float | None:
        """How long until a parked job may start again; None if none waits on the clock."""
        while self._parked and self._parked[0][1] != self.jobs[self._parked[0][2]].park_generation:
            heapq.heappop(self._parked)  # stale: resumed or parked again since
        if not self._parked:
            return None
        return max(0.0, self._parked[0][0] - self._clock())

    def defer(self, job_index: int, seconds: float | None) -> None:
        """Park a job for ``seconds`` (None: until ``resume``); its items in flight go on."""
        until = float("inf") if seconds is None else self._clock() + max(seconds, 0.0)
        self._park(job_index, until)

    def resume(self, job_index: int) -> None:
        if self.jobs[job_index].parked:
            self._unpark(job_index)

    def _undo_dispatch(self, item: int) -> tuple[int, JobQueue]:
        """Undo the peaks and the slot of the last dispatch, which returned ``item``."""
        job_index = self._job_of_item[item]
        job = self.jobs[job_index]
        if self._undo_peaks is None or self._undo_peaks[0] != item:
            raise ValueError(f"item {item} is not the last one dispatched")
        _, self._peak_in_flight, job.peak = self._undo_peaks
        self._undo_peaks = None
        job.in_flight -= 1
        self._in_flight -= 1
        if self._estimates is not None:
            self._estimates.stopped(job_index, item)
        return job_index, job

    def put_back(self, item: int, defer_seconds: float | None) -> None:
        """Undo the dispatch of ``item`` (the last one made) and defer its job."""
        job_index, job = self._undo_dispatch(item)
        if self._estimates is None:
            job.waiting.appendleft(item)
        else:
            self._estimates.put_back(job_index, item)
        job.left += 1
        self._pending += 1
        self.defer(job_index, defer_seconds)

    def set_cap(self, job_index: int, cap: int) -> None:
        """Change a job's effective cap; items in flight above it are not stopped."""
        if cap < 1:
            raise ValueError("a cap must be >= 1")
        job = self.jobs[job_index]
        job.integrate_allowed(self._clock(), self.workers)
        job.cap = cap
        self._offer(job_index)

    def mean_cap(self, job_index: int) -> float:
        """The job's concurrency allowance averaged over time since the scheduler started.

        The allowance is its (effective) cap within the pool, or more while items
        started under a higher cap are still in flight. No schedule could have
        done the job's work in less than work / this mean: the lower bound's term
        for an adaptive job, whose cap moved during the run.
        """
        job = self.jobs[job_index]
        job.integrate_allowed(self._clock(), self.workers)
        elapsed = job.allowed_since - self._started
        if elapsed <= 0.0:
            return float(job.allowed(self.workers))
        return job.allowed_seconds / elapsed

    def next_dispatch(self) -> int | None:
        if self._in_flight >= self.workers or self._pending == 0:
            return None
        job_index = self._pop_startable()
        if job_index is None:
            return None
        job = self.jobs[job_index]
        item = job.waiting.popleft() if self._estimates is None else self._estimates.take(job_index)
        self._undo_peaks = (item, self._peak_in_flight, job.peak)
        job.left -= 1
        self._count_start(job_index, item)
        self._pending -= 1
        self._offer(job_index)
        return item

    def _count_start(self, job_index: int, item: int) -> None:
        job = self.jobs[job_index]
        job.in_flight += 1
        job.peak = max(job.peak, job.in_flight)
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        if self._estimates is not None:
            self._estimates.started(job_index, item, self._now)

    def start_held(self, item: int) -> None:
        """A held-back item starts now, outside the queues (it holds its slot already)."""
        self._now = self._clock()
        self._count_start(self._job_of_item[item], item)

    def drop(self, item: int) -> None:
        """Undo the ``next_dispatch`` that returned ``item``: it runs elsewhere, never here."""
        job_index, _ = self._undo_dispatch(item)
        self._offer(job_index)  # its slot is free again

    def complete(self, item: int, seconds: float | None = None) -> None:
        """Give back the item's slot; its measured ``seconds`` teach the duration order."""
        job_index = self._job_of_item[item]
        job = self.jobs[job_index]
        if job.in_flight <= 0:
            raise ValueError(f"item {item} completed but its job has nothing in flight")
        if job.in_flight > job.cap:
            job.integrate_allowed(
                self._clock(), self.workers
            )  # the allowance goes down with in flight
        job.in_flight -= 1
        self._in_flight -= 1
        if self._estimates is not None:
            self._estimates.stopped(job_index, item)
        if self._estimates is not None and seconds is not None and seconds >= 0.0:
            self._estimates.learn(job_index, seconds)
            self._refresh(job_index)
        self._offer(job_index)
