"""The run loop that replaces pytest's: exclusive items alone, then the pool's coordinator.

Workers (``workers.py``) run the whole ``pytest_runtest_protocol`` hook of one
item, so every plugin's wrapper still runs around it. The coordinator, on the
main thread, replays each item's report hooks in one block when the item
finishes, reports items that overran their timeout (``timeouts.py``), and
decides when to stop. Every patch it makes goes on one ``Patches`` stack.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

import pytest

from .. import clock
from ..isolation.anyio_runner import anyio_runner_per_thread
from ..isolation.item_context import HookCall
from ..jobs import Job, Plan
from ..own_waits import own_wait, slot_uses
from ..patching import Patches
from ..pytest_compat import replace_setup_state
from ..scheduler import CappedScheduler, LocalSlotGate, Scheduler, SlotGate
from ..slot_gate import ItemClaims
from ..summary import JobStats, Outcome, RunStats, worse
from .cpu_bound import CpuBoundGauge, SwitchInterval
from .fixture_store import current_item, install_fixture_store
from .interruption import keyboard_interrupt_in_a_test
from .outcomes import StatusSeen, outcome_of
from .setup_tree import ConcurrentSetupState
from .stepwise import follow_stepwise
from .thread_safety import ROUTED_HOOKS, HookRouter, dots_only_progress, thread_safe_runtime
from .timeouts import report_timeout
from .workers import Event, Finished, Interrupted, Reported, WorkerExited, WorkerPool


def _stops_the_run(error: BaseException | None) -> bool:
    """``KeyboardInterrupt`` or ``pytest.exit()`` raised in a test: not an internal error."""
    return isinstance(error, (KeyboardInterrupt, pytest.exit.Exception))


class PoolHandle:
    """The ``PoolControl`` handed to ``pytest_dynpool_pool_started``: a job's cap by name."""

    def __init__(self, jobs: Sequence[Job], pool: WorkerPool) -> None:
        self._jobs = tuple(jobs)
        self._index = {job.name: index for index, job in enumerate(jobs)}
        self._pool: WorkerPool | None = pool

    @property
    def jobs(self) -> Sequence[Job]:
        return self._jobs

    def set_job_cap(self, job_name: str, cap: int) -> None:
        index = self._index[job_name]
        pool = self._pool
        if pool is not None:
            pool.set_job_cap(index, cap)

    def resume_job(self, job_name: str) -> None:
        index = self._index[job_name]
        pool = self._pool
        if pool is not None:
            pool.resume_job(index)

    def detach(self) -> None:
        """The pooled phase is over: from now on ``set_job_cap`` does nothing."""
        self._pool = None


def run_session(
    session: pytest.Session,
    plan: Plan,
    stats: RunStats,
    patches: Patches,
    slot_gate: SlotGate | None,
    claims: ItemClaims | None = None,
) -> None:
    """The session's run loop; its patches go on ``patches``, undone after the session."""
    install_fixture_store(patches, session)
    PoolExecutor(session, plan, stats, patches, slot_gate, claims).run()


class PoolExecutor:
    """Runs one session's items: exclusive ones alone, then the pooled ones."""

    def __init__(
        self,
        session: pytest.Session,
        plan: Plan,
        stats: RunStats,
        patches: Patches,
        slot_gate: SlotGate | None = None,
        claims: ItemClaims | None = None,
    ) -> None:
        self.session = session
        self.claims = claims
        held_back = claims.held_back if claims is not None else frozenset()
        self.plan = plan
        self.stats = stats
        self.patches = patches
        self.slot_gate = slot_gate or LocalSlotGate()
        self.error: BaseException | None = None
        self.interrupt: KeyboardInterrupt | None = None
        # What a pooled test raised to stop the run, re-raised once the tests in flight end.
        self.stopped_by_test: BaseException | None = None
        self.setup_state = ConcurrentSetupState(
            [
                *plan.exclusive,
                *(p.item for i, p in enumerate(plan.pooled) if i not in held_back),
            ],
            is_stopping=self.stopping,
        )

    def stopping(self) -> bool:
        session = self.session
        return bool(
            session.shouldfail
            or session.shouldstop
            or self.error
            or self.interrupt
            or self.stopped_by_test
        )

    def run(self) -> None:
        replace_setup_state(self.patches, self.session, self.setup_state)
        follow_stepwise(self.session)
        self._run_exclusive()
        self._run_pool()

    def _run_exclusive(self) -> None:
        hook = self.session.config.hook
        # Each gets the item that runs after it, as in plain pytest: the next exclusive
        # item, then the first pooled one.
        following = [*self.plan.exclusive[1:], *(pooled.item for pooled in self.plan.pooled[:1])]
        for item, nextitem in zip(self.plan.exclusive, [*following, None], strict=False):
            self.setup_state.expect(item)
            with current_item(item):
                hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            self._raise_if_session_stops()

    def _raise_if_session_stops(self) -> None:
        if self.session.shouldfail:
            raise self.session.Failed(self.session.shouldfail)
        if self.session.shouldstop:
            raise self.session.Interrupted(self.session.shouldstop)

    def _make_scheduler(self) -> Scheduler:
        jobs = self.plan.jobs
        return CappedScheduler(
            self.stats.workers,
            [job.cap for job in jobs],
            [pooled.job_index for pooled in self.plan.pooled],
            rates=[job.rate.per_second if job.rate else None for job in jobs],
            order=self.plan.order,
            known_seconds=self.plan.known_seconds,
            group_of_item=self._function_of_each_item(),
            held_back=self.claims.held_back if self.claims is not None else frozenset(),
        )

    def _function_of_each_item(self) -> list[int]:
        """Each pooled item's test function, as an index: a parametrized function's items
        are expected to take alike, so the duration order starts one of each early."""
        index: dict[tuple[str, str], int] = {}
        groups = []
        for pooled in self.plan.pooled:
            item = pooled.item
            parent = item.parent.nodeid if item.parent is not None else ""
            function = (parent, getattr(item, "originalname", item.name))
            groups.append(index.setdefault(function, len(index)))
        return groups

    def _run_pool(self) -> None:
        if not self.plan.pooled:
            return
        for pooled in self.plan.pooled:
            # A cached_property, which takes one lock shared by all items before
            # Python 3.12: fill it here rather than on contending workers.
            pooled.item.location  # noqa: B018
        config = self.session.config
        scheduler = self._make_scheduler()
        if self.claims is not None and not self.claims.exhausted:
            # Session fixtures are not torn down between this worker's items and stolen ones.
            self.setup_state.hold_session(self.session)
        # Lengthened only while the phase is CPU-bound; restored when the phase ends.
        switch_interval = SwitchInterval()
        pool = WorkerPool(
            self.plan.pooled,
            self.plan.jobs,
            self.stats.workers,
            scheduler,
            should_stop=self.stopping,
            slot_gate=self.slot_gate,
            before_start=self.setup_state.expect,
            cpu_gauge=CpuBoundGauge(self.stats.workers, on_change=switch_interval.follow),
            claims=self.claims,
            adopt=self.setup_state.adopt,
            drop=self.setup_state.drop,
            nothing_to_steal=self.setup_state.release_session,
        )
        handle = PoolHandle(self.plan.jobs, pool)
        router = HookRouter(config.pluginmanager)
        started = clock.perf_counter()
        try:
            config.hook.pytest_dynpool_pool_started(config=config, pool=handle)
            try:
                with Patches() as phase:  # undone when the phase ends, however it ends
                    phase.callback(switch_interval.restore)
                    outside = thread_safe_runtime(phase, config, router)
                    dots_only_progress(phase, config)
                    anyio_runner_per_thread(phase)
                    seen = StatusSeen()
                    config.pluginmanager.register(seen)
                    phase.callback(config.pluginmanager.unregister, seen)
                    try:
                        _Coordinator(self, router, pool, seen).run()
                    finally:
                        self.stats.outside_tests_output = outside.text()
            finally:
                if pool.deadlines.abandoned_threads:
                    # Their threads run on: whatever they still report reaches no plugin.
                    pool.deadlines.silence_left_behind(
                        self.patches, config.pluginmanager, ROUTED_HOOKS
                    )
        finally:
            handle.detach()
            self.stats.pool_wall_seconds = clock.perf_counter() - started
            self.stats.pool_peak_in_flight = scheduler.peak_in_flight
            self.stats.not_started = scheduler.pending
            self.stats.threads_left_behind = pool.deadlines.threads_left_behind()
            if (torn_down := self.setup_state.session_teardown) is not None:
                self.stats.session_teardowns = [(torn_down[0].nodeid, torn_down[1])]
            for job_index, job_stats in enumerate(self.stats.jobs):
                job_stats.peak_in_flight = scheduler.job_peak(job_index)
                job_stats.mean_cap = scheduler.mean_cap(job_index)
        if self.error is not None:
            raise self.error
        if self.stopped_by_test is not None:
            raise self.stopped_by_test  # with its own traceback: the test's location
        if self.interrupt is not None:
            raise self.interrupt
        self._raise_if_session_stops()


class _Coordinator:
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
