"""The worker threads and the coordinator loop that replaces pytest's run loop.

Workers run the whole ``pytest_runtest_protocol`` hook of one item (so every
plugin's wrapper still runs around it) with report hooks routed to the
coordinator, and claim their next item from the scheduler themselves, under
one lock, so that no round trip through the main thread sits between two
items. The coordinator, on the main thread, replays each item's report hooks
in one block when the item finishes and decides when to stop. A failed report
is handed over at once and the worker waits until it is logged, so ``-x``
stops the run before the failing item tears down, exactly as in plain pytest.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import FrameType

import pytest

from .fixtures import REGISTRY_KEY
from .jobs import Plan
from .jobstate import JobState
from .pytest_compat import (
    CURRENT_ITEM,
    HOOK_SINK,
    ConcurrentSetupState,
    HookCall,
    HookRouter,
    anyio_runner_per_thread,
    current_item,
    dots_only_progress,
    item_context,
    replace_setup_state,
    thread_safe_runtime,
)
from .scheduler import CappedScheduler
from .summary import JobStats, Outcome, RunStats, worse


@dataclass(frozen=True)
class _Reported:
    """Report hooks of an item so far, ending with a failed report to log now."""

    index: int
    calls: list[HookCall]
    logged: threading.Event


@dataclass(frozen=True)
class _Finished:
    index: int
    calls: list[HookCall]
    started: float
    ended: float
    error: BaseException | None


@dataclass(frozen=True)
class _WorkerExited:
    error: BaseException | None = None


@dataclass(frozen=True)
class _Interrupted:
    """Ctrl-C arrived: stop dispatching, let the items in flight finish."""


_Event = _Reported | _Finished | _WorkerExited | _Interrupted


def _outcome_of(report: pytest.TestReport) -> Outcome:
    if report.failed:
        return Outcome.FAILED
    if report.skipped:
        return Outcome.SKIPPED
    return Outcome.PASSED


class PoolExecutor:
    """Runs one session's items: exclusive ones alone, then the pooled ones."""

    def __init__(self, session: pytest.Session, plan: Plan, stats: RunStats) -> None:
        self.session = session
        self.plan = plan
        self.stats = stats
        self.error: BaseException | None = None
        self.interrupt: KeyboardInterrupt | None = None
        self.setup_state = ConcurrentSetupState(
            [*plan.exclusive, *plan.pooled], is_stopping=self.stopping
        )

    def stopping(self) -> bool:
        session = self.session
        return bool(session.shouldfail or session.shouldstop or self.error or self.interrupt)

    def run(self) -> None:
        replace_setup_state(self.session, self.setup_state)
        self._run_exclusive()
        self._run_pool()

    def _run_exclusive(self) -> None:
        hook = self.session.config.hook
        for item in self.plan.exclusive:
            self.setup_state.expect(item)
            with current_item(item):
                hook.pytest_runtest_protocol(item=item, nextitem=None)
            self._raise_if_session_stops()

    def _raise_if_session_stops(self) -> None:
        if self.session.shouldfail:
            raise self.session.Failed(self.session.shouldfail)
        if self.session.shouldstop:
            raise self.session.Interrupted(self.session.shouldstop)

    def _follow_effective_caps(self, pool: _WorkerPool) -> None:
        """Adaptive jobs: dispatch tests against the cap their HTTP feedback sets."""
        registry = self.session.config.stash.get(REGISTRY_KEY, None)
        if registry is None:
            return
        for index, job_stats in enumerate(self.stats.jobs):
            if job_stats.job.adaptive:
                state = registry.state(job_stats.job)
                state.on_cap_change(partial(pool.set_cap, index, state))
                pool.set_cap(index, state)  # tests that ran alone may have moved it already

    def _run_pool(self) -> None:
        if not self.plan.pooled:
            return
        for item in self.plan.pooled:
            # A cached_property, which takes one lock shared by all items before
            # Python 3.12: fill it here rather than on contending workers.
            item.location  # noqa: B018
        jobs = [job_stats.job for job_stats in self.stats.jobs]
        scheduler = CappedScheduler(
            self.stats.workers,
            [job.cap for job in jobs],
            self.plan.job_of_pooled,
            rates=[job.rate.per_second if job.rate else None for job in jobs],
        )
        router = HookRouter(self.session.config.pluginmanager)
        pool = _WorkerPool(self, scheduler)
        self._follow_effective_caps(pool)
        started = time.perf_counter()
        config = self.session.config
        try:
            with (
                thread_safe_runtime(config, router) as outside,
                dots_only_progress(config),
                anyio_runner_per_thread(),
            ):
                try:
                    _Coordinator(self, router, pool).run()
                finally:
                    self.stats.outside_tests_output = outside.text()
        finally:
            self.stats.pool_wall_seconds = time.perf_counter() - started
            self.stats.pool_peak_in_flight = scheduler.peak_in_flight
            self.stats.not_started = scheduler.pending
            for job_stats, job_queue in zip(self.stats.jobs, scheduler.jobs, strict=True):
                job_stats.peak_in_flight = job_queue.peak
        if self.error is not None:
            raise self.error
        if self.interrupt is not None:
            raise self.interrupt
        self._raise_if_session_stops()


@dataclass
class _ItemReports:
    """Collects the report hooks of one item on its worker."""

    index: int
    events: queue.SimpleQueue[_Event]
    pool_closed: threading.Event
    calls: list[HookCall] = field(default_factory=list)

    def __call__(self, call: HookCall) -> None:
        self.calls.append(call)
        report = call.kwargs.get("report")
        if getattr(report, "failed", False) and not self.pool_closed.is_set():
            logged = threading.Event()
            self.events.put(_Reported(self.index, self.calls, logged))
            self.calls = []
            while not logged.wait(timeout=1.0):
                if self.pool_closed.is_set():
                    return


class _WorkerPool:
    """N daemon threads that claim items from the shared scheduler."""

    def __init__(self, executor: PoolExecutor, scheduler: CappedScheduler) -> None:
        self.executor = executor
        self.scheduler = scheduler
        self.items = executor.plan.pooled
        self.events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self.closed = threading.Event()
        self.no_more_claims = threading.Event()
        self.go = threading.Event()
        self._slots = threading.Condition(threading.Lock())
        self.threads = [
            threading.Thread(target=self._work, name=f"dynpool-worker-{n}", daemon=True)
            for n in range(executor.stats.workers)
        ]

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
            if isinstance(event, _Reported):
                event.logged.set()

    def _claim(self) -> int | None:
        with self._slots:
            while not self.executor.stopping() and not self.no_more_claims.is_set():
                index = self.scheduler.next_dispatch()
                if index is not None:
                    self.executor.setup_state.expect(self.items[index])
                    return index
                if self.scheduler.pending == 0:
                    return None
                # Every job with waiting items is at its cap or waits for a start token.
                self._slots.wait(timeout=self.scheduler.seconds_until_ready())
            return None

    def _release(self, index: int) -> None:
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
                self._release(index)
        except BaseException as exc:  # a bug of ours: surface it, never hang
            error = exc
        finally:
            self.events.put(_WorkerExited(error))

    def _run(self, index: int) -> bool:
        """Run one item; False when it raised out of pytest's protocol."""
        item = self.items[index]
        reports = _ItemReports(index, self.events, self.closed)
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
        self.events.put(_Finished(index, reports.calls, started, time.perf_counter(), error))
        return error is None


class _Coordinator:
    """The main-thread loop of the pooled phase."""

    def __init__(self, executor: PoolExecutor, router: HookRouter, pool: _WorkerPool) -> None:
        self.executor = executor
        self.router = router
        self.pool = pool
        self.outcomes: dict[int, Outcome] = {}

    def run(self) -> None:
        try:
            self.pool.start()
        except KeyboardInterrupt:
            self.pool.close()  # no item has started yet: nothing to wait for
            raise
        running = len(self.pool.threads)
        try:
            with self._first_ctrl_c_stops_dispatch():
                self.pool.go.set()
                while running:
                    event = self.pool.events.get()
                    if isinstance(event, _WorkerExited):
                        running -= 1
                        self._record_error(event.error)
                    elif isinstance(event, _Interrupted):
                        self.pool.wake()
                    else:
                        self._handle(event)
        finally:
            if running:
                self.pool.close()

    @contextmanager
    def _first_ctrl_c_stops_dispatch(self) -> Iterator[None]:
        """The first SIGINT becomes an event, so that no item's reports are cut in half.

        A second one raises ``KeyboardInterrupt`` at once. Only when pytest's
        default handler is in place and we are on the main thread; otherwise
        Ctrl-C raises as usual and the run ends without waiting.
        """
        on_main_thread = threading.current_thread() is threading.main_thread()
        if not on_main_thread or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            if self.executor.interrupt is not None:
                raise KeyboardInterrupt
            self.executor.interrupt = KeyboardInterrupt()
            self.pool.events.put(_Interrupted())  # SimpleQueue.put is safe in a handler

        signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _record_error(self, error: BaseException | None) -> None:
        if error is not None and self.executor.error is None:
            self.executor.error = error
            self.pool.wake()

    def _handle(self, event: _Reported | _Finished) -> None:
        try:
            for call in event.calls:
                self._replay(event.index, call)
        finally:
            if isinstance(event, _Reported):
                event.logged.set()
        if isinstance(event, _Finished):
            self._account(event)
            self._record_error(event.error)
        if self.executor.stopping():
            self.pool.wake()

    def _replay(self, index: int, call: HookCall) -> None:
        if self.executor.error is not None:
            return  # after an internal error pytest would log nothing more
        report = call.kwargs.get("report")
        if call.name == "pytest_runtest_logreport" and isinstance(report, pytest.TestReport):
            self.outcomes[index] = worse(self.outcomes.get(index), _outcome_of(report))
        try:
            self.router.replay(call)
        except BaseException as exc:
            self._record_error(exc)

    def _account(self, event: _Finished) -> None:
        stats = self.executor.stats
        job_stats: JobStats = stats.jobs[self.executor.plan.job_of_pooled[event.index]]
        duration = event.ended - event.started
        job_stats.busy_seconds += duration
        job_stats.durations.append(duration)
        outcome = self.outcomes.pop(event.index, None)
        if outcome is not None:
            job_stats.count(outcome)
