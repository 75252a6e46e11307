"""The worker threads and the coordinator loop that replaces pytest's run loop.

Workers run the whole ``pytest_runtest_protocol`` hook of one item (so every
plugin's wrapper still runs around it) with report hooks routed to the
coordinator. The coordinator, on the main thread, dispatches items under the
caps, replays each item's report hooks in one block when the item finishes,
and decides when to stop. A failed report is handed over synchronously: the
worker waits until it is logged, so ``-x`` stops the run before the failing
item tears down, exactly as in plain pytest.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from .jobs import Plan
from .pytest_compat import (
    HOOK_SINK,
    ConcurrentSetupState,
    HookCall,
    HookRouter,
    current_item,
    dots_only_progress,
    replace_setup_state,
    thread_safe_runtime,
)
from .scheduler import CappedScheduler
from .summary import JobStats, Outcome, RunStats, worse


@dataclass(frozen=True)
class _Reported:
    index: int
    call: HookCall
    logged: threading.Event | None


@dataclass(frozen=True)
class _Finished:
    index: int
    started: float
    ended: float
    error: BaseException | None


_Event = _Reported | _Finished


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
        self._error: BaseException | None = None
        self._interrupt: KeyboardInterrupt | None = None
        self.setup_state = ConcurrentSetupState(
            [*plan.exclusive, *plan.pooled], is_stopping=self._stopping
        )

    def _stopping(self) -> bool:
        session = self.session
        return bool(session.shouldfail or session.shouldstop or self._error or self._interrupt)

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

    def _run_pool(self) -> None:
        if not self.plan.pooled:
            return
        scheduler = CappedScheduler(
            self.stats.workers,
            [job_stats.job.cap for job_stats in self.stats.jobs],
            self.plan.job_of_pooled,
        )
        router = HookRouter(self.session.config.pluginmanager)
        pool = _WorkerPool(self.stats.workers, self.plan.pooled)
        started = time.perf_counter()
        with (
            thread_safe_runtime(self.session.config, router),
            dots_only_progress(self.session.config),
        ):
            pool.start()
            try:
                _Coordinator(self, scheduler, router, pool).run()
            finally:
                pool.stop(wait=scheduler.in_flight == 0)
        self.stats.pool_wall_seconds = time.perf_counter() - started
        self.stats.pool_peak_in_flight = scheduler.peak_in_flight
        for job_stats, job_queue in zip(self.stats.jobs, scheduler.jobs, strict=True):
            job_stats.peak_in_flight = job_queue.peak
        if self._error is not None:
            raise self._error
        if self._interrupt is not None:
            raise self._interrupt
        self._raise_if_session_stops()


class _WorkerPool:
    """N daemon threads running items handed out through one queue."""

    def __init__(self, size: int, items: list[pytest.Item]) -> None:
        self.items = items
        self.tasks: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self.closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"dynpool-worker-{n}", daemon=True)
            for n in range(size)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, wait: bool) -> None:
        """End the workers; ``wait`` only when none is running an item.

        Otherwise the coordinator has given up (second Ctrl-C, internal error):
        workers still in flight are daemons and must not block on a hand-over.
        """
        self.closed = True
        for _ in self._threads:
            self.tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
            return
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, _Reported) and event.logged is not None:
                event.logged.set()

    def _sink(self, index: int) -> Callable[[HookCall], None]:
        def hand_over(call: HookCall) -> None:
            report = call.kwargs.get("report")
            failed = getattr(report, "failed", False) and not self.closed
            logged = threading.Event() if failed else None
            self.events.put(_Reported(index, call, logged))
            if logged is not None:
                logged.wait()

        return hand_over

    def _work(self) -> None:
        while (index := self.tasks.get()) is not None:
            item = self.items[index]
            token = HOOK_SINK.set(self._sink(index))
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                with current_item(item):
                    item.config.hook.pytest_runtest_protocol(item=item, nextitem=None)
            except BaseException as exc:  # handed to the coordinator, which re-raises it
                error = exc
            finally:
                HOOK_SINK.reset(token)
            self.events.put(_Finished(index, started, time.perf_counter(), error))


class _Coordinator:
    """The main-thread loop of the pooled phase."""

    def __init__(
        self,
        executor: PoolExecutor,
        scheduler: CappedScheduler,
        router: HookRouter,
        pool: _WorkerPool,
    ) -> None:
        self.executor = executor
        self.scheduler = scheduler
        self.router = router
        self.pool = pool
        self.buffered: dict[int, list[HookCall]] = {}
        self.outcomes: dict[int, Outcome] = {}

    def run(self) -> None:
        executor = self.executor
        while True:
            if executor._stopping():
                dropped = self.scheduler.cancel_pending()
                executor.stats.not_started += len(dropped)
            else:
                self._dispatch()
            if self.scheduler.in_flight == 0:
                return
            try:
                event = self.pool.events.get()
            except KeyboardInterrupt as interrupt:
                if executor._interrupt is not None:
                    raise  # a second Ctrl-C: stop waiting for items in flight
                executor._interrupt = interrupt
                continue
            self._handle(event)

    def _dispatch(self) -> None:
        while (index := self.scheduler.next_dispatch()) is not None:
            self.executor.setup_state.expect(self.pool.items[index])
            self.pool.tasks.put(index)

    def _handle(self, event: _Event) -> None:
        if isinstance(event, _Reported):
            if event.logged is None:
                self.buffered.setdefault(event.index, []).append(event.call)
                return
            try:
                self._flush(event.index)
                self._replay(event.index, event.call)
            finally:
                event.logged.set()
            return
        self._flush(event.index)
        self._account(event)
        self.scheduler.complete(event.index)
        if event.error is not None and self.executor._error is None:
            self.executor._error = event.error

    def _flush(self, index: int) -> None:
        for call in self.buffered.pop(index, []):
            self._replay(index, call)

    def _replay(self, index: int, call: HookCall) -> None:
        if self.executor._error is not None:
            return  # after an internal error pytest would log nothing more
        report = call.kwargs.get("report")
        if call.name == "pytest_runtest_logreport" and isinstance(report, pytest.TestReport):
            self.outcomes[index] = worse(self.outcomes.get(index), _outcome_of(report))
        try:
            self.router.replay(call)
        except BaseException as exc:
            self.executor._error = exc

    def _account(self, event: _Finished) -> None:
        stats = self.executor.stats
        job_stats: JobStats = stats.jobs[self.executor.plan.job_of_pooled[event.index]]
        duration = event.ended - event.started
        job_stats.busy_seconds += duration
        job_stats.durations.append(duration)
        outcome = self.outcomes.pop(event.index, None)
        if outcome is not None:
            job_stats.count(outcome)
