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
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..http.traffic import JobState
from ..isolation.item_context import HOOK_SINK, HookCall, item_context
from ..scheduler import CappedScheduler
from .fixture_store import CURRENT_ITEM

if TYPE_CHECKING:
    from .coordinator import PoolExecutor


@dataclass(frozen=True)
class Reported:
    """Report hooks of an item so far, ending with a failed report to log now."""

    index: int
    calls: list[HookCall]
    logged: threading.Event


@dataclass(frozen=True)
class Finished:
    index: int
    calls: list[HookCall]
    started: float
    ended: float
    error: BaseException | None


@dataclass(frozen=True)
class WorkerExited:
    error: BaseException | None = None


@dataclass(frozen=True)
class Interrupted:
    """Ctrl-C arrived: stop dispatching, let the items in flight finish."""


Event = Reported | Finished | WorkerExited | Interrupted


@dataclass
class ItemReports:
    """Collects the report hooks of one item on its worker."""

    index: int
    events: queue.SimpleQueue[Event]
    pool_closed: threading.Event
    calls: list[HookCall] = field(default_factory=list)
    # Set by the coordinator when the item times out: from then on nothing is sent.
    abandoned: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, call: HookCall) -> None:
        with self.lock:
            if self.abandoned:
                return
            self.calls.append(call)
            report = call.kwargs.get("report")
            if not getattr(report, "failed", False) or self.pool_closed.is_set():
                return
            logged = threading.Event()
            self.events.put(Reported(self.index, self.calls, logged))
            self.calls = []
        while not logged.wait(timeout=1.0):
            if self.pool_closed.is_set():
                return

    def finished(self, started: float, error: BaseException | None) -> None:
        with self.lock:
            if not self.abandoned:
                ended = time.perf_counter()
                self.events.put(Finished(self.index, self.calls, started, ended, error))

    def abandon(self) -> list[HookCall]:
        """Stop sending; the calls not sent yet, for the coordinator to log."""
        with self.lock:
            self.abandoned = True
            calls, self.calls = self.calls, []
        return calls


class WorkerPool:
    """N daemon threads that claim items from the shared scheduler."""

    def __init__(self, executor: PoolExecutor, scheduler: CappedScheduler) -> None:
        self.executor = executor
        self.scheduler = scheduler
        self.items = executor.plan.pooled
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.closed = threading.Event()
        self.no_more_claims = threading.Event()
        self.go = threading.Event()
        self._slots = threading.Condition(threading.Lock())
        self.threads = [self._new_thread(n) for n in range(executor.stats.workers)]
        # Per-item timeouts: the items in flight that have one, with their thread
        # and deadline; an item past it is abandoned with its thread.
        self.timeouts = executor.plan.timeout_of_pooled
        self.has_timeouts = any(timeout is not None for timeout in self.timeouts)
        self._deadlines: dict[int, tuple[threading.Thread, float]] = {}
        self.abandoned: set[int] = set()
        self.sinks: dict[int, ItemReports] = {}
        self.abandoned_threads: set[threading.Thread] = set()

    def _new_thread(self, number: int) -> threading.Thread:
        return threading.Thread(target=self._work, name=f"dynpool-worker-{number}", daemon=True)

    def start(self) -> None:
        """Start every worker; none claims an item before ``go`` is set."""
        for thread in self.threads:
            thread.start()

    def set_cap(self, job_index: int, state: JobState) -> None:
        """Follow a job's effective cap; waiting workers re-check at once."""
        with self._slots:
            self.scheduler.set_cap(job_index, state.effective_cap)
            self._slots.notify_all()

    def wake(self) -> None:
        """Let idle workers re-check whether the run is stopping."""
        with self._slots:
            self._slots.notify_all()

    def close(self) -> None:
        """The coordinator gave up: no worker may wait for a hand-over any more."""
        self.closed.set()
        self.no_more_claims.set()
        self.go.set()
        self.wake()
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, Reported):
                event.logged.set()

    def _claim(self) -> int | None:
        with self._slots:
            while not self.executor.stopping() and not self.no_more_claims.is_set():
                index = self.scheduler.next_dispatch()
                if index is not None:
                    self.executor.setup_state.expect(self.items[index])
                    if self.has_timeouts and (timeout := self.timeouts[index]) is not None:
                        # Made here, under the lock, so that a timeout always finds it.
                        self.sinks[index] = ItemReports(index, self.events, self.closed)
                        thread = threading.current_thread()
                        self._deadlines[index] = (thread, time.monotonic() + timeout)
                    return index
                if self.scheduler.pending == 0:
                    return None
                # Every job with waiting items is at its cap or waits for a start token.
                self._slots.wait(timeout=self.scheduler.seconds_until_ready())
            return None

    def _release(self, index: int) -> bool:
        """Give the item's slot back; False when it timed out and was given back already."""
        with self._slots:
            if index in self.abandoned:
                return False
            self._deadlines.pop(index, None)
            self.sinks.pop(index, None)
            self.scheduler.complete(index)
            self._slots.notify_all()
            return True

    def next_deadline(self) -> float | None:
        with self._slots:
            return min((deadline for _, deadline in self._deadlines.values()), default=None)

    def abandon_expired(self, now: float) -> list[tuple[int, threading.Thread, list[HookCall]]]:
        """Items past their deadline, with their unsent report calls.

        Their threads are replaced at once; their slots go back once their
        timeout is logged (``give_back``), so that ``-x`` starts nothing more.
        """
        with self._slots:
            expired = [
                (index, thread, self.sinks[index].abandon())
                for index, (thread, deadline) in self._deadlines.items()
                if deadline <= now
            ]
            for index, thread, _ in expired:
                del self._deadlines[index]
                self.abandoned.add(index)
                self.abandoned_threads.add(thread)
        for _ in expired:
            thread = self._new_thread(len(self.threads))
            self.threads.append(thread)
            thread.start()
        return expired

    def give_back(self, index: int) -> None:
        """The slot of an abandoned item, once its timeout has been logged."""
        with self._slots:
            self.scheduler.complete(index)
            self._slots.notify_all()

    def _work(self) -> None:
        error: BaseException | None = None
        try:
            self.go.wait()
            while (index := self._claim()) is not None:
                if not self._run(index):
                    # KeyboardInterrupt or pytest.exit() in a test: nothing more
                    # may start, before the coordinator has even seen it.
                    self.no_more_claims.set()
                if not self._release(index):
                    return  # timed out: a replacement thread has taken this one's place
        except BaseException as exc:  # a bug of ours: surface it, never hang
            error = exc
        finally:
            if threading.current_thread() not in self.abandoned_threads:
                self.events.put(WorkerExited(error))

    def _run(self, index: int) -> bool:
        """Run one item; False when it raised out of pytest's protocol."""
        item = self.items[index]
        reports = self.sinks.get(index) or ItemReports(index, self.events, self.closed)
        sink_token = HOOK_SINK.set(reports)
        item_token = CURRENT_ITEM.set(item)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            with item_context(item):
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=None)
        except BaseException as exc:  # KeyboardInterrupt, pytest.exit(): the coordinator re-raises
            error = exc
        finally:
            CURRENT_ITEM.reset(item_token)
            HOOK_SINK.reset(sink_token)
        reports.finished(started, error)
        return error is None
