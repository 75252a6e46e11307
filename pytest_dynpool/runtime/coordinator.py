"""The run loop that replaces pytest's: exclusive items alone, then the pool's coordinator.

Workers (``workers.py``) run the whole ``pytest_runtest_protocol`` hook of one
item, so every plugin's wrapper still runs around it. The coordinator, on the
main thread, replays each item's report hooks in one block when the item
finishes, reports items that overran their timeout, and decides when to stop.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from types import FrameType

import pytest

from ..http.plugin import REGISTRY_KEY
from ..isolation.anyio_runner import anyio_runner_per_thread
from ..isolation.item_context import HookCall
from ..jobs import Plan
from ..pytest_compat import drop_report_hooks_from, replace_setup_state
from ..scheduler import CappedScheduler
from ..summary import JobStats, Outcome, RunStats, worse
from .fixture_store import current_item
from .setup_tree import ConcurrentSetupState
from .thread_safety import ROUTED_HOOKS, HookRouter, dots_only_progress, thread_safe_runtime
from .workers import Event, Finished, Interrupted, Reported, WorkerExited, WorkerPool


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

    def _follow_effective_caps(self, pool: WorkerPool) -> None:
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
        pool = WorkerPool(self, scheduler)
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
            self.stats.threads_left_behind = sum(t.is_alive() for t in pool.abandoned_threads)
            for job_stats, job_queue in zip(self.stats.jobs, scheduler.jobs, strict=True):
                job_stats.peak_in_flight = job_queue.peak
        if self.error is not None:
            raise self.error
        if self.interrupt is not None:
            raise self.interrupt
        self._raise_if_session_stops()


class _Coordinator:
    """The main-thread loop of the pooled phase."""

    def __init__(self, executor: PoolExecutor, router: HookRouter, pool: WorkerPool) -> None:
        self.executor = executor
        self.router = router
        self.pool = pool
        self.outcomes: dict[int, Outcome] = {}
        # What has been logged of each item in flight: "start" and phase -> outcome.
        self.logged: dict[int, dict[str, str]] = {}
        self.finished: set[int] = set()
        self.running = 0

    def run(self) -> None:
        try:
            self.pool.start()
        except KeyboardInterrupt:
            self.pool.close()  # no item has started yet: nothing to wait for
            raise
        self.running = len(self.pool.threads)
        try:
            with self._first_ctrl_c_stops_dispatch():
                self.pool.go.set()
                while self.running:
                    try:
                        event = self.pool.events.get(timeout=self._wait_time())
                    except queue.Empty:
                        self._time_out_expired()
                        continue
                    self._dispatch(event)
            if self.pool.abandoned_threads:
                # Their threads run on: whatever they still report is ignored.
                drop_report_hooks_from(
                    self.executor.session.config.pluginmanager,
                    self.pool.abandoned_threads,
                    ROUTED_HOOKS,
                )
        finally:
            self.pool.close()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, WorkerExited):
            self.running -= 1
            self._record_error(event.error)
        elif isinstance(event, Interrupted):
            self.pool.wake()
        else:
            self._handle(event)

    def _wait_time(self) -> float | None:
        """How long the coordinator may block; polls at least once a second under timeouts."""
        if not self.pool.has_timeouts:
            return None
        deadline = self.pool.next_deadline()
        if deadline is None:
            return 1.0
        return min(max(deadline - time.monotonic(), 0.0), 1.0)

    def _time_out_expired(self) -> None:
        expired = self.pool.abandon_expired(time.monotonic())
        # Whatever these items sent before they were abandoned is logged first.
        while True:
            try:
                self._dispatch(self.pool.events.get_nowait())
            except queue.Empty:
                break
        for index, thread, unsent in expired:
            if index not in self.finished:  # else it finished just in time
                for call in unsent:
                    self._replay(index, call)
                self._report_timeout(index, thread)
            self.pool.give_back(index)
        if self.executor.stopping():
            self.pool.wake()

    def _report_timeout(self, index: int, thread: threading.Thread) -> None:
        """Log what plain pytest would have shown had the item failed where it is stuck."""
        item = self.pool.items[index]
        timeout = self.pool.timeouts[index] or 0.0
        frame = sys._current_frames().get(thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)\n"
        logged = self.logged.pop(index, {})
        if "setup" not in logged:
            phase = "setup"
        elif logged["setup"] == "passed" and "call" not in logged:
            phase = "call"
        else:
            phase = "teardown"
        message = (
            f"Timeout: {item.nodeid} was still running after {timeout:g}s "
            f"(dynpool timeout, in {phase}); stack of {thread.name}, which is left behind:\n"
            f"{stack}"
        )
        hook = self.executor.session.config.hook
        now = time.time()
        try:
            if "start" not in logged:
                hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            for when, outcome, longrepr in (
                (phase, "failed", message),
                *([("teardown", "passed", None)] if phase != "teardown" else []),
            ):
                report = pytest.TestReport(
                    item.nodeid,
                    item.location,
                    dict.fromkeys(item.keywords, 1),
                    outcome,  # type: ignore[arg-type]
                    longrepr,
                    when,  # type: ignore[arg-type]
                    duration=timeout if outcome == "failed" else 0.0,
                    start=now,
                    stop=now,
                    user_properties=item.user_properties,
                )
                hook.pytest_runtest_logreport(report=report)
            hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        except BaseException as exc:
            self._record_error(exc)
        stats = self.executor.stats
        stats.timed_out.append(item.nodeid)
        job_stats = stats.jobs[self.executor.plan.job_of_pooled[index]]
        job_stats.busy_seconds += timeout
        job_stats.durations.append(timeout)
        job_stats.count(Outcome.FAILED)
        self.outcomes.pop(index, None)

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
            self.pool.events.put(Interrupted())  # SimpleQueue.put is safe in a handler

        signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _record_error(self, error: BaseException | None) -> None:
        if error is not None and self.executor.error is None:
            self.executor.error = error
            self.pool.wake()

    def _handle(self, event: Reported | Finished) -> None:
        try:
            for call in event.calls:
                self._replay(event.index, call)
        finally:
            if isinstance(event, Reported):
                event.logged.set()
        if isinstance(event, Finished):
            self._account(event)
            self._record_error(event.error)
        if self.executor.stopping():
            self.pool.wake()

    def _replay(self, index: int, call: HookCall) -> None:
        if self.executor.error is not None:
            return  # after an internal error pytest would log nothing more
        report = call.kwargs.get("report")
        if call.name == "pytest_runtest_logreport" and isinstance(report, pytest.TestReport):
            # A passed setup or teardown is no pass (--setup-plan runs no call), as for pytest.
            if report.when == "call" or not report.passed:
                self.outcomes[index] = worse(self.outcomes.get(index), _outcome_of(report))
            if self.pool.has_timeouts:
                self.logged.setdefault(index, {})[report.when] = report.outcome
        elif call.name == "pytest_runtest_logstart" and self.pool.has_timeouts:
            self.logged.setdefault(index, {})["start"] = "logged"
        try:
            self.router.replay(call)
        except BaseException as exc:
            self._record_error(exc)

    def _account(self, event: Finished) -> None:
        stats = self.executor.stats
        job_stats: JobStats = stats.jobs[self.executor.plan.job_of_pooled[event.index]]
        duration = event.ended - event.started
        job_stats.busy_seconds += duration
        job_stats.durations.append(duration)
        self.logged.pop(event.index, None)
        if self.pool.has_timeouts:
            self.finished.add(event.index)
        outcome = self.outcomes.pop(event.index, None)
        if outcome is not None:
            job_stats.count(outcome)
