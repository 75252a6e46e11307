"""The main-thread loop of the pooled phase.

It replays each item's report hooks in one block when the item finishes,
reports items that overran their timeout (``timeouts.py``), counts outcomes and
times for the summary, and decides when to stop: the first Ctrl-C stops
dispatch, an error in the pool stops the run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import pytest

from .. import clock
from ..isolation.item_context import HookCall
from ..own_waits import own_wait, slot_uses
from ..summary import JobStats, Outcome, worse
from .interruption import keyboard_interrupt_in_a_test
from .item_events import Event, Finished, Interrupted, Reported, WorkerExited
from .outcomes import StatusSeen, outcome_of
from .thread_safety import HookRouter
from .timeouts import report_timeout
from .workers import WorkerPool

if TYPE_CHECKING:
    from .executor import PoolExecutor


def _stops_the_run(error: BaseException | None) -> bool:
    """``KeyboardInterrupt`` or ``pytest.exit()`` raised in a test: not an internal error."""
    return isinstance(error, (KeyboardInterrupt, pytest.exit.Exception))


class Coordinator:
    """The main-thread loop of the pooled phase."""

    def __init__(
        self, executor: PoolExecutor, router: HookRouter, pool: WorkerPool, seen: StatusSeen
    ) -> None:
        self.executor = executor
        self.seen = seen
        self.router = router
        self.pool = pool
        self.has_timeouts = pool.deadlines.active
        self.outcomes: dict[int, Outcome] = {}
        # What has been logged of each item in flight: "start" and phase -> outcome.
        self.logged: dict[int, dict[str, str]] = {}
        self.finished: set[int] = set()
        self.running = 0

    def run(self) -> None:
        try:
            with self._first_ctrl_c_stops_dispatch():
                try:
                    self.pool.start()
                finally:
                    self.running = self.pool.running
                while self.running:
                    event = self.pool.next_event(timeout=self._wait_time())
                    if event is None:
                        self._time_out_expired()
                    else:
                        self._dispatch(event)
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
        if not self.has_timeouts:
            return None
        deadline = self.pool.next_deadline()
        if deadline is None:
            return 1.0
        return min(max(deadline - clock.monotonic(), 0.0), 1.0)

    def _time_out_expired(self) -> None:
        expired = self.pool.abandon_expired(clock.monotonic())
        # Whatever these items sent before they were abandoned is logged first.
        while (event := self.pool.next_event(timeout=0)) is not None:
            self._dispatch(event)
        for each in expired:
            if each.index not in self.finished:  # else it finished just in time
                for call in each.unsent:
                    self._replay(each.index, call)
                self._report_timeout(each.index, each.thread)
            self.pool.give_back(each.index)
        if self.executor.stopping():
            self.pool.wake()

    def _report_timeout(self, index: int, thread: threading.Thread) -> None:
        pooled = self.executor.plan.pooled[index]
        timeout = pooled.timeout or 0.0
        try:
            report_timeout(
                self.executor.session.config.hook,
                pooled.item,
                timeout,
                thread,
                self.logged.pop(index, {}),
            )
        except BaseException as exc:
            self._record_error(exc)
        stats = self.executor.stats
        stats.timed_out.append(pooled.item.nodeid)
        job_stats = stats.jobs[pooled.job_index]
        job_stats.record(pooled.item.nodeid, timeout)
        job_stats.count(Outcome.FAILED)
        self.outcomes.pop(index, None)
        ended = clock.perf_counter()
        self._item_finished(pooled.item, thread.name, ended - timeout, ended, timed_out=True)

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
            self.executor.interrupt = keyboard_interrupt_in_a_test()
            self.pool.put_event(Interrupted())

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
            if event.error is not None:  # rare: no call per item for it
                if _stops_the_run(event.error):
                    if self.executor.stopped_by_test is None:
                        self.executor.stopped_by_test = event.error
                else:
                    self._record_error(event.error)
        if self.executor.stopping():
            self.pool.wake()

    def _replay(self, index: int, call: HookCall) -> None:
        if self.executor.error is not None:
            return  # after an internal error pytest would log nothing more
        found = call.kwargs.get("report")
        report = found if call.name == "pytest_runtest_logreport" else None
        if not isinstance(report, pytest.TestReport):
            report = None
        if report is not None and self.has_timeouts:
            self.logged.setdefault(index, {})[report.when] = report.outcome
        elif call.name == "pytest_runtest_logstart" and self.has_timeouts:
            self.logged.setdefault(index, {})["start"] = "logged"
        try:
            self.router.replay(call)
            if report is not None:
                self._count(index, report)
        except BaseException as exc:
            self._record_error(exc)

    def _count(self, index: int, report: pytest.TestReport) -> None:
        """Counted as the terminal counted it, which it has just done."""
        outcome, subtest_failed = outcome_of(self.executor.session.config, report, self.seen)
        if outcome is not None:
            self.outcomes[index] = worse(self.outcomes.get(index), outcome)
        if subtest_failed:
            job_index = self.executor.plan.pooled[index].job_index
            self.executor.stats.jobs[job_index].subtests_failed += 1

    def _account(self, event: Finished) -> None:
        stats = self.executor.stats
        pooled = self.executor.plan.pooled[event.index]
        job_stats: JobStats = stats.jobs[pooled.job_index]
        job_stats.record(pooled.item.nodeid, event.ended - event.started, own_wait(pooled.item))
        for job_name, uses in slot_uses(pooled.item).items():
            stats.add_slot_uses(job_name, uses)
        self.logged.pop(event.index, None)
        if self.has_timeouts:
            self.finished.add(event.index)
        outcome = self.outcomes.pop(event.index, None)
        if event.error is not None and _stops_the_run(event.error):
            outcome = Outcome.INTERRUPTED  # whatever it logged before, it did not pass
        if outcome is not None:
            job_stats.count(outcome)
        item = self.executor.plan.pooled[event.index].item
        self._item_finished(item, event.worker, event.started, event.ended, timed_out=False)

    def _item_finished(
        self, item: pytest.Item, worker: str, started: float, ended: float, *, timed_out: bool
    ) -> None:
        """Tell plugins (the reports) where and when the item ran; an error ends the run."""
        hook = self.executor.session.config.hook.pytest_dynpool_item_finished
        if not hook.get_hookimpls():
            return  # nobody listens (no report asked for): spare the hook call per item
        try:
            hook(item=item, worker=worker, started=started, ended=ended, timed_out=timed_out)
        except BaseException as exc:
            self._record_error(exc)
