"""The worker threads: each claims its next item itself and runs its whole protocol.

Claiming happens under one lock shared with the scheduler, so that no round trip
through the main thread sits between two items. Report hooks of the item in
flight are collected and handed to the coordinator as events; a failed report
is handed over at once and the worker waits until it is logged, so ``-x`` stops
the run before the failing item tears down, exactly as in plain pytest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from functools import partial

import pytest

from .. import clock
from ..backends import Taken
from ..jobs import Job, PooledItem
from ..scheduler import Scheduler, SlotGate
from ..slot_gate import ItemClaims
from .cpu_bound import CpuBoundGauge
from .item_events import Event, ItemReports, Reported, RunningItem, WorkerExited
from .timeouts import Deadlines, Expired


class WorkerPool:
    """N daemon threads that claim items from the shared scheduler.

    Its state is its own: the coordinator starts it, takes its events, changes
    a job's cap, abandons timed-out items and closes it.
    """

    def __init__(
        self,
        items: Sequence[PooledItem],
        jobs: Sequence[Job],
        workers: int,
        scheduler: Scheduler,
        *,
        should_stop: Callable[[], bool],
        slot_gate: SlotGate,
        before_start: Callable[[pytest.Item], None],
        cpu_gauge: CpuBoundGauge | None = None,
        claims: ItemClaims | None = None,
        adopt: Callable[[pytest.Item], None] = lambda item: None,
        drop: Callable[[pytest.Item], None] = lambda item: None,
        nothing_to_steal: Callable[[], None] = lambda: None,
    ) -> None:
        """``claims``: items shared with other xdist workers; ``adopt`` is told of an item
        stolen from another worker before it starts, ``drop`` of one that another
        worker claimed, ``nothing_to_steal`` once when nothing is left to steal (both
        called without the lock: they may tear down collectors)."""
        self._items = items
        # What each item is told runs after it (pytest's ``nextitem``): the next in plan order.
        self._next_item = [pooled.item for pooled in items[1:]] + [None]
        self._jobs = jobs
        self._workers = workers
        self._scheduler = scheduler
        self._should_stop = should_stop
        self._gate = slot_gate
        self._before_start = before_start
        self._gauge = cpu_gauge
        self._claims = claims
        self._adopt = adopt
        self._drop = drop
        self._nothing_to_steal = nothing_to_steal
        # Run by the claiming thread once it has left the lock (teardowns of collectors).
        self._after_lock: list[Callable[[], None]] = []
        self._told_exhausted = False
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        # Set when nothing more may start, and no worker may wait for a hand-over.
        self._stopped = threading.Event()
        self._slots = threading.Condition(threading.Lock())
        self._threads: list[threading.Thread] = []
        self.deadlines = Deadlines([pooled.timeout for pooled in items])

    @property
    def running(self) -> int:
        """Threads started and not left behind by a timeout."""
        return len(self._threads) - len(self.deadlines.abandoned_threads)

    def _start_thread(self) -> None:
        number = len(self._threads)
        thread = threading.Thread(target=self._work, name=f"dynpool-worker-{number}", daemon=True)
        thread.start()
        self._threads.append(thread)  # only once started: the coordinator counts on it

    def start(self) -> None:
        """Start the workers: never more than there are items to run.

        When the system refuses a thread ("can't start new thread"), the pool
        runs with the workers it has; with none, the error stands.
        """
        for _ in range(min(self._workers, len(self._items))):
            try:
                self._start_thread()
            except RuntimeError:
                if not self._threads:
                    raise
                break

    def next_event(self, timeout: float | None) -> Event | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def put_event(self, event: Event) -> None:
        """From a signal handler too: ``SimpleQueue.put`` is reentrant."""
        self._events.put(event)

    def set_job_cap(self, job_index: int, cap: int) -> None:
        """Follow a job's effective cap; waiting workers re-check at once. No-op once closed."""
        with self._slots:
            if self._stopped.is_set():
                return
            self._scheduler.set_cap(job_index, cap)
            self._slots.notify_all()

    def resume_job(self, job_index: int) -> None:
        """End a job's deferral now (its slot gate saw a release). No-op once closed."""
        with self._slots:
            if self._stopped.is_set():
                return
            self._scheduler.resume(job_index)
            self._slots.notify_all()

    def wake(self) -> None:
        """Let idle workers re-check whether the run is stopping."""
        with self._slots:
            self._slots.notify_all()

    def close(self) -> None:
        """Nothing more starts and no worker waits for a hand-over any more."""
        self._stopped.set()
        self.wake()
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, Reported):
                event.logged.set()

    def _claim(self, finished: int | None, seconds: float) -> tuple[int, ItemReports] | None:
        """Give back the slot of the item this worker ``finished`` in ``seconds``; claim the next.

        One lock hold for both, and usually no wake-up: the slot given back is the
        one this worker takes again. Waiting workers are woken when this one takes
        nothing (the run is stopping, or nothing may start), or one of them when
        room is left after its claim.
        """
        with self._slots:
            claimed = self._claim_next(finished, seconds)
            after_lock, self._after_lock = self._after_lock, []
        for call in after_lock:
            call()
        return claimed

    def _claim_next(self, finished: int | None, seconds: float) -> tuple[int, ItemReports] | None:
        if finished is None:
            return self._claim_locked()
        if not self.deadlines.unwatch(finished):
            return None  # timed out: a replacement thread has taken this one's place
        self._complete(finished, seconds)
        claimed = self._claim_locked(wake_before_waiting=True)
        if claimed is None:
            self._slots.notify_all()
        elif self._scheduler.in_flight < self._limit():
            self._slots.notify()
        return claimed

    def _limit(self) -> int:
        return self._workers if self._gauge is None else self._gauge.limit

    def _may_start(self) -> bool:
        """False while CPU-bound and as many items as the gauge allows are in flight."""
        if self._gauge is None:
            return True
        limit_before = self._gauge.limit
        limit = self._gauge.look()
        if limit > limit_before:
            self._slots.notify_all()  # the workers held back may start again
        return self._scheduler.in_flight < limit

    def _claim_locked(self, wake_before_waiting: bool = False) -> tuple[int, ItemReports] | None:
        while not self._should_stop() and not self._stopped.is_set():
            if not self._may_start():
                assert self._gauge is not None
                self._slots.wait(timeout=self._gauge.window)
                continue
            index = self._scheduler.next_dispatch()
            if index is not None:
                job = self._jobs[self._items[index].job_index]
                wait: float | Taken | None
                if self._claims is None:
                    wait = self._gate.try_acquire(job.name, job.cap)
                else:
                    wait = self._claims.try_claim(index, job.name, job.cap)
                if isinstance(wait, Taken):  # another xdist worker started it
                    self._scheduler.drop(index)
                    self._after_lock.append(partial(self._drop, self._items[index].item))
                    continue
                if wait is not None:  # another process holds the job's slots
                    self._scheduler.put_back(index, wait)
                    continue
                return self._start(index)
            stolen = self._steal()
            if stolen is not None:
                return self._start(stolen)
            claims = self._claims
            may_steal = claims is not None and not claims.exhausted
            if self._scheduler.pending == 0 and not may_steal:
                return None
            # Every job with waiting items is at its cap or parked.
            if wake_before_waiting:
                self._slots.notify_all()  # as before this worker gave its slot back
                wake_before_waiting = False
            timeout = self._scheduler.seconds_until_ready()
            if may_steal and claims is not None:
                retry = claims.retry_in()
                timeout = retry if timeout is None else min(timeout, retry)
            self._slots.wait(timeout=timeout)
        return None

    def _steal(self) -> int | None:
        """Another xdist worker's unstarted item, when a thread is free for it."""
        claims = self._claims
        if claims is None or claims.exhausted or self._scheduler.in_flight >= self._workers:
            return None
        stolen = claims.steal()
        if claims.exhausted and not self._told_exhausted:
            self._told_exhausted = True
            self._after_lock.append(self._nothing_to_steal)
        if stolen is not None:
            self._scheduler.start_held(stolen)
            self._adopt(self._items[stolen].item)
        return stolen

    def _start(self, index: int) -> tuple[int, ItemReports]:
        self._before_start(self._items[index].item)
        reports = ItemReports(index, self._events, self._stopped)
        # Watched here, under the lock, so that a timeout always finds it.
        self.deadlines.watch(index, reports)
        return index, reports

    def _complete(self, index: int, seconds: float | None = None) -> None:
        self._scheduler.complete(index, seconds)
        self._gate.release(self._jobs[self._items[index].job_index].name)

    def next_deadline(self) -> float | None:
        with self._slots:
            return self.deadlines.next_deadline()

    def abandon_expired(self, now: float) -> list[Expired]:
        """Items past their deadline, with their unsent report calls.

        Their threads are replaced at once; their slots go back once their
        timeout is logged (``give_back``), so that ``-x`` starts nothing more.
        """
        with self._slots:
            expired = self.deadlines.expire(now)
        for _ in expired:
            self._start_thread()
        return expired

    def give_back(self, index: int) -> None:
        """The slot of an abandoned item, once its timeout has been logged."""
        with self._slots:
            self._complete(index)
            self._slots.notify_all()

    def _work(self) -> None:
        error: BaseException | None = None
        try:
            worker = threading.current_thread().name  # once per thread, not per item
            finished: int | None = None
            seconds = 0.0
            while (claimed := self._claim(finished, seconds)) is not None:
                finished, reports = claimed
                started = clock.perf_counter()
                ran = self._run(finished, reports, worker)
                seconds = clock.perf_counter() - started  # teaches the duration order
                if not ran:
                    # KeyboardInterrupt or pytest.exit() in a test: nothing more
                    # may start, before the coordinator has even seen it.
                    self._stopped.set()
        except BaseException as exc:  # a bug of ours: surface it, never hang
            error = exc
        finally:
            thread = threading.current_thread()
            if thread in self.deadlines.abandoned_threads:
                self.deadlines.left_behind_thread_ended(thread)
            else:
                self._events.put(WorkerExited(error))

    def _run(self, index: int, reports: ItemReports, worker: str) -> bool:
        """Run one item; False when it raised out of pytest's protocol."""
        item = self._items[index].item
        started = clock.perf_counter()
        error: BaseException | None = None
        try:
            with RunningItem(item, reports):
                nextitem = self._next_item[index]  # None for the last only, as in pytest
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        except BaseException as exc:  # KeyboardInterrupt, pytest.exit(): the coordinator re-raises
            error = exc
        reports.finished(started, error, worker)
        return error is None
