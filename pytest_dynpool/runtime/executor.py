"""The run loop that replaces pytest's: exclusive items alone, then the pooled phase.

Workers (``workers.py``) run the whole ``pytest_runtest_protocol`` hook of one
item, so every plugin's wrapper still runs around it. The executor sets the
pooled phase up (scheduler, worker pool, hook routing, capture, the CPU gauge)
and hands it to the coordinator (``coordinator.py``) on the main thread. Every
patch it makes goes on one ``Patches`` stack.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from .. import clock
from ..isolation.anyio_runner import anyio_runner_per_thread
from ..jobs import Job, Plan
from ..patching import Patches
from ..pytest_compat import replace_setup_state
from ..scheduler import CappedScheduler, LocalSlotGate, Scheduler, SlotGate
from ..slot_gate import ItemClaims
from ..summary import RunStats
from .coordinator import Coordinator
from .cpu_bound import CpuBoundGauge, SwitchInterval
from .fixture_store import current_item, install_fixture_store
from .outcomes import StatusSeen
from .setup_tree import ConcurrentSetupState
from .stepwise import follow_stepwise
from .thread_safety import ROUTED_HOOKS, HookRouter, dots_only_progress, thread_safe_runtime
from .workers import WorkerPool


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
                        Coordinator(self, router, pool, seen).run()
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
