"""Expected durations that learn during the run: pure, no pytest.

The duration order ranks jobs by their remaining expected work. Durations kept
from earlier runs seed the estimates; every item that finishes adds its
measured time, so that a first run (nothing kept) learns as it goes: an item
never measured is expected to take its job's median, else (a job never
measured) the longest duration seen so far, or more once its first item has run
long enough to say so (``look``): a slow job is found out while its first item
still runs, not only when it ends.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

UNKNOWN_SECONDS = 1.0
"""What an item is expected to take while no duration at all is known: any constant
makes the duration order the count order (remaining items per slot)."""
RUNNING_FACTOR = 2.0
"""An item still running after e seconds is expected to take this times e in all. Nothing
tells its scale: under a scale-free prior it is, at the median, halfway through (and
it takes at least e whatever the prior)."""
LOOK_FIRST = 0.001
"""Seconds: the first look at a job's running item comes no sooner (nor before what it
says could exceed the longest item measured)."""
LOOK_GROWTH = 1.25
"""Each later look waits until the item has run this many times as long as at the last
one: O(log(duration)) looks per item, each O(log jobs) for the scheduler."""


class RunningMedian:
    """The median of a growing multiset: O(log n) per value, O(1) to read."""

    def __init__(self) -> None:
        self._low: list[float] = []  # negated: a max-heap of the smaller half
        self._high: list[float] = []  # a min-heap of the larger half

    def __len__(self) -> int:
        return len(self._low) + len(self._high)

    def add(self, value: float) -> None:
        if self._low and value > -self._low[0]:
            heapq.heappush(self._high, value)
        else:
            heapq.heappush(self._low, -value)
        if len(self._low) > len(self._high) + 1:
            heapq.heappush(self._high, -heapq.heappop(self._low))
        elif len(self._high) > len(self._low):
            heapq.heappush(self._low, -heapq.heappop(self._high))

    def median(self) -> float | None:
        if not self._low:
            return None
        if len(self._low) > len(self._high):
            return -self._low[0]
        return (-self._low[0] + self._high[0]) / 2.0


@dataclass
class JobWork:
    """One job's waiting items split by what is known of them, and its measured durations.

    Items with a duration of their own wait longest first (``measured``); the
    others (``unmeasured``) are expected to take the job's median and wait in
    collection order, except that the first item of each group (a test function)
    comes first: ``probes`` of them are left at the head.
    """

    measured: deque[int] = field(default_factory=deque)
    unmeasured: deque[int] = field(default_factory=deque)
    measured_seconds: float = 0.0
    """Sum of the own durations of the ``measured`` items."""
    samples: RunningMedian = field(default_factory=RunningMedian)
    sampled: bool = False
    """At least one sample: its own median, no longer the longest seen, is its estimate."""
    probes: int = 0
    taken: int = 0
    """Items started (and not put back)."""
    from_running: float = 0.0
    """While never measured: what its item in flight (``watched``, started at ``since``) says
    an item takes, ``RUNNING_FACTOR`` x its time so far at the last ``look``."""
    watched: int | None = None
    since: float = 0.0
    watch_generation: int = 0
    ranked_long: bool = False
    """What ``runs_long`` said at the last look that told the scheduler."""

    def __len__(self) -> int:
        return len(self.measured) + len(self.unmeasured)

    def add_sample(self, seconds: float) -> None:
        self.samples.add(seconds)
        self.sampled = True

    def enqueue(self, item: int, seconds: float | None, probe: bool, *, front: bool) -> None:
        """Queue ``item`` (its own duration, if known) at the back, or back at the ``front``."""
        queue = self.unmeasured if seconds is None else self.measured
        if front:
            queue.appendleft(item)
        else:
            queue.append(item)
        if seconds is None:
            self.probes += probe
        else:
            self.measured_seconds += seconds


class Estimates:
    """Every job's expected remaining work; ``learn`` adds a measured duration."""

    def __init__(
        self,
        job_count: int,
        job_of_item: list[int],
        known: list[float | None],
        group_of_item: Sequence[int] = (),
        held_back: frozenset[int] = frozenset(),
    ) -> None:
        """``held_back``: items not queued (see ``CappedScheduler``).

        ``group_of_item``: items of one group (a test function) are expected to take
        alike, so that one item of each unknown group is worth starting early (a probe)."""
        self.jobs = [JobWork() for _ in range(job_count)]
        self._looks: list[tuple[float, int, int]] = []  # (when, watch generation, job)
        self.next_look = float("inf")
        """When ``look`` may next have something to do: the caller skips it before."""
        self.everything = RunningMedian()
        self.longest = max((seconds for seconds in known if seconds is not None), default=0.0)
        self._own: list[float | None] = [
            known[item] if item < len(known) else None for item in range(len(job_of_item))
        ]
        self._probe = [False] * len(job_of_item)
        seen: set[tuple[int, int]] = set()
        for item, job_index in enumerate(job_of_item):
            group = (job_index, group_of_item[item] if item < len(group_of_item) else -1)
            if self._own[item] is None and group not in seen:
                seen.add(group)
                self._probe[item] = True
        for item in sorted(
            (item for item in range(len(job_of_item)) if item not in held_back),
            key=lambda item: (not self._probe[item], -(self._own[item] or 0.0)),
        ):  # probes, then longest first; ties (and unknown items) in collection order
            seconds = self._own[item]
            self.jobs[job_of_item[item]].enqueue(item, seconds, self._probe[item], front=False)
            if seconds is not None:
                self.jobs[job_of_item[item]].add_sample(seconds)
                self.everything.add(seconds)

    @property
    def anything_known(self) -> bool:
        return len(self.everything) > 0

    def unmeasured_per_item(self) -> float:
        """What an item of a job never measured is expected to take: the longest seen.

        Pessimistic on purpose: an unknown job guessed long starts early and is soon
        measured, at little cost if it is short; guessed short (the run's median), a
        slow job started last and ended the run alone (the example suite: wall/LB 1.47
        with the median, 1.36-1.40 with the longest, on a first run).
        """
        return self.longest if self.anything_known else UNKNOWN_SECONDS

    def per_item(self, job_index: int) -> float:
        """What an unmeasured item of this job is expected to take."""
        work = self.jobs[job_index]
        median = work.samples.median()
        if median is not None:
            return median
        if not self.anything_known:
            return UNKNOWN_SECONDS
        return max(self.longest, work.from_running)

    def runs_long(self, job_index: int) -> bool:
        """Never measured, and its running item says it takes longer than anything measured.

        Its expected work no longer scales with the longest seen, as the other
        unmeasured jobs' does: the scheduler ranks it with the measured jobs.
        """
        work = self.jobs[job_index]
        return work.from_running > self.longest and not work.sampled and self.anything_known

    def started(self, job_index: int, item: int, now: float) -> None:
        """``item`` started at ``now``: watched if its job was never measured and none is.

        Looked at only once something is measured: before, every item is expected to
        take one unit alike, and what a running item says has nothing to compare with.
        """
        work = self.jobs[job_index]
        if work.watched is None and not work.sampled:
            work.watched, work.since = item, now
            if self.anything_known:
                self._look_later(job_index, work, 0.0)

    def stopped(self, job_index: int, item: int) -> None:
        """``item`` ended, or its start was undone: no longer watched."""
        work = self.jobs[job_index]
        if work.watched == item:
            work.watched = None
            work.watch_generation += 1

    def look(self, now: float) -> list[int]:
        """Jobs whose running item was due a look, now read: the caller re-keys them.

        A job never measured is expected to take the longest seen; once its item
        has run long enough, ``RUNNING_FACTOR`` x that item's time so far.
        """
        looked = []
        while self._looks and self._looks[0][0] <= now:
            _, generation, job_index = heapq.heappop(self._looks)
            work = self.jobs[job_index]
            if work.watch_generation != generation or work.sampled:
                continue  # ended, or put back, or its job was measured since
            elapsed = now - work.since
            grew = elapsed * RUNNING_FACTOR > work.from_running
            work.from_running = max(work.from_running, elapsed * RUNNING_FACTOR)
            long = self.runs_long(job_index)
            if (long and grew) or long != work.ranked_long:  # else its key is unchanged
                work.ranked_long = long
                looked.append(job_index)
            self._look_later(job_index, work, elapsed * LOOK_GROWTH)
        self.next_look = self._looks[0][0] if self._looks else float("inf")
        return looked

    def _look_later(self, job_index: int, work: JobWork, after: float) -> None:
        after = max(after, self.longest / RUNNING_FACTOR, LOOK_FIRST)
        work.watch_generation += 1
        heapq.heappush(self._looks, (work.since + after, work.watch_generation, job_index))
        if len(self._looks) > 2 * len(self.jobs) + 64:  # stale looks: at most one valid a job
            self._looks = [
                look for look in self._looks if self.jobs[look[2]].watch_generation == look[1]
            ]
            heapq.heapify(self._looks)
        self.next_look = self._looks[0][0]

    def remaining(self, job_index: int) -> float:
        work = self.jobs[job_index]
        return work.measured_seconds + len(work.unmeasured) * self.per_item(job_index)

    def longest_waiting(self, job_index: int) -> float:
        """The longest expected of the job's waiting items (0.0 when none waits)."""
        work = self.jobs[job_index]
        longest = self.per_item(job_index) if work.unmeasured else 0.0
        if work.measured:
            seconds = self._own[work.measured[0]]
            assert seconds is not None
            longest = max(longest, seconds)
        return longest

    def is_measured(self, job_index: int) -> bool:
        """A duration of the job is known: its estimate no longer follows the longest seen."""
        return self.jobs[job_index].sampled

    def take(self, job_index: int) -> int:
        """The job's next item: its longest expected, ties in collection order."""
        work = self.jobs[job_index]
        if work.measured:
            head = work.measured[0]
            seconds = self._own[head]
            assert seconds is not None
            expected = self.per_item(job_index)
            if not work.unmeasured or (seconds, -head) > (expected, -work.unmeasured[0]):
                work.measured.popleft()
                work.measured_seconds -= seconds
                work.taken += 1
                return head
        item = work.unmeasured.popleft()
        work.probes -= self._probe[item]
        work.taken += 1
        return item

    def put_back(self, job_index: int, item: int) -> None:
        """Undo ``take``: the item is at the head of its deque again."""
        work = self.jobs[job_index]
        work.taken -= 1
        work.enqueue(item, self._own[item], self._probe[item], front=True)

    def probe_rank(self, job_index: int) -> float:
        """0: the job started nothing yet; 1: one of its groups did not; 2: no probe left.

        Probes go first, each job's first before any job's second: what they take
        is what the estimates lack most.
        """
        work = self.jobs[job_index]
        if not work.probes:
            return 2.0
        return 0.0 if work.taken == 0 else 1.0

    def learn(self, job_index: int, seconds: float) -> None:
        """An item of the job took ``seconds``: its job's median (and the longest) move."""
        first = not self.anything_known
        self.jobs[job_index].add_sample(seconds)
        self.everything.add(seconds)
        self.longest = max(self.longest, seconds)
        if first:  # the items already running can now say something: look at them
            for other, work in enumerate(self.jobs):
                if work.watched is not None and not work.sampled:
                    self._look_later(other, work, 0.0)
