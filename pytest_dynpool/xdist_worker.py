"""On an xdist worker: run the items the controller sends on this process's thread pool.

The controller sends a worker all of its items at once, then shutdown
(``xdist_controller.PartitionScheduling``); with stealing the worker's plan
also holds the other shares' pooled items, held back until it takes one
(``xdist_balance``). The worker then runs them like a
plain dynpool run with each job's whole cap, held across the workers by the
run's limits store (``limits_store``, named in ``workerinput``): its
coordinator replays each item's reports on the main thread, where this plugin
stamps each report with the index of its own item and sends one
``runtest_protocol_complete`` per item, after its ``logfinish``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from .jobs import Plan, build_plan
from .limits_store import LOCAL_JOBS
from .options import Settings, Unmarked
from .pytest_compat import XdistWorkerLink, xdist_worker_output
from .slot_gate import ItemClaims, SlotGate
from .summary import RunStats
from .xdist_balance import steal_order, steals
from .xdist_channel import (
    NO_JOB,
    USAGE_ERROR_KEY,
    WORKEROUTPUT_KEY,
    CollectedPlan,
    JobRecord,
    SideChannel,
)
from .xdist_stats import stats_to_dict

if TYPE_CHECKING:
    from .backends.claims import StoreClaims

STOP_POLL_SECONDS = 0.02


def collected_plan(plan: Plan, items: list[pytest.Item]) -> CollectedPlan:
    """The job of every collected item by its index, for the controller."""
    jobs = [
        JobRecord(job.name, job.cap, job.rate.per_second if job.rate else None) for job in plan.jobs
    ]
    job_of = {pooled.item: pooled.job_index for pooled in plan.pooled}
    return CollectedPlan(jobs, [job_of.get(item, NO_JOB) for item in items])


class XdistWorker:
    """Registered on a worker whose controller runs dynpool (see ``plugin.pytest_configure``)."""

    def __init__(self, config: pytest.Config, channel: SideChannel, worker_id: str) -> None:
        self.config = config
        self.channel = channel
        self.worker_id = worker_id
        self.link = XdistWorkerLink(config)
        self.index_of: dict[str, int] = {}
        self.durations: dict[str, float] = {}
        self._log_fd = channel.inflight_log(worker_id)
        self._done = threading.Event()
        self._watcher: threading.Thread | None = None
        # Only once this worker runs the loop itself; else xdist's own loop stamps and completes.
        self.running = False
        # Collection indices of the other shares' items this worker may steal, in order.
        self.held: list[int] = []
        self.steals = False
        self.claims: StoreClaims | None = None
        self.plan = Plan()  # this worker's plan, once received

    def plan_ready(self, session: pytest.Session, plan: Plan) -> None:
        """Tell the controller every item's job, before xdist reports the collection."""
        self.index_of = {item.nodeid: index for index, item in enumerate(session.items)}
        self.channel.write_plan(self.worker_id, collected_plan(plan, session.items))

    def usage_error(self, error: pytest.UsageError) -> None:
        """Hand a bad marker's error to the controller, which ends the run with it.

        The worker then ends with exit code 4, and xdist sends the workeroutput
        before the controller would see a worker gone without its collection.
        """
        xdist_worker_output(self.config)[USAGE_ERROR_KEY] = [str(arg) for arg in error.args]

    def receive_plan(self, session: pytest.Session, plan: Plan, settings: Settings) -> Plan:
        """Wait for this worker's items; the plan of those items alone, with whole caps."""
        self.running = True
        indices = self.link.receive_all()
        self.steals = steals(self.config)
        if self.steals:
            # Not stolen: a rated job's items, and a local job's (the store holds no
            # claim or slot of it: each worker's own ``unmarked`` job).
            stealable = {
                self.index_of[pooled.item.nodeid]
                for pooled in plan.pooled
                if plan.jobs[pooled.job_index].rate is None
                and plan.jobs[pooled.job_index].name not in LOCAL_JOBS
            }
            parts = self.channel.read_parts()
            self.held = steal_order(self.worker_id, parts, stealable - set(indices))
        items = [session.items[index] for index in [*indices, *self.held]]
        assignments = [self.config.hook.pytest_dynpool_job_for_item(item=item) for item in items]
        mine = build_plan(
            items,
            assignments,
            dict(settings.cap_overrides),
            unmarked_in_pool=settings.unmarked is Unmarked.POOL,
            workers=settings.workers,
            rate_overrides=dict(settings.rate_overrides),
            default_timeout=settings.timeout,
            alone_fixtures=settings.exclusive_fixtures,
        )
        mine.unknown_overrides = plan.unknown_overrides
        mine.order = plan.order
        if plan.known_seconds:  # measured durations, by pooled item, for --dynpool-order
            pairs = zip(plan.pooled, plan.known_seconds, strict=True)
            seconds = {pooled.item: known for pooled, known in pairs}
            mine.known_seconds = [seconds.get(pooled.item) for pooled in mine.pooled]
        self._watch_for_stop(session)
        self.plan = mine
        return mine

    def pytest_dynpool_item_claims(
        self, config: pytest.Config, gate: SlotGate | None
    ) -> ItemClaims | None:
        """With stealing on, every pooled item starts through a claim in the run's store."""
        if not self.steals:
            return None
        from .backends import ClaimingBackend
        from .backends.claims import StoreClaims
        from .backends.gate import StoreGate

        if not isinstance(gate, StoreGate) or not isinstance(gate.backend, ClaimingBackend):
            raise RuntimeError("pytest-dynpool: stealing under -n needs the run's SQLite store")
        plan = self.plan
        keys = [self.index_of[pooled.item.nodeid] for pooled in plan.pooled]
        pool_item = {key: item for item, key in enumerate(keys)}
        candidates = []
        for key in self.held:
            job = plan.jobs[plan.pooled[pool_item[key]].job_index]
            candidates.append((pool_item[key], job.name, job.cap))
        self.claims = StoreClaims(
            gate, gate.backend, str(self.channel.directory), self.worker_id, keys, candidates
        )
        return self.claims

    def _watch_for_stop(self, session: pytest.Session) -> None:
        """-x / --maxfail reached in another worker: stop dispatching here too."""

        def watch() -> None:
            while not self._done.wait(STOP_POLL_SECONDS):
                reason = self.channel.stop_reason()
                if reason is not None:
                    if not (session.shouldfail or session.shouldstop):
                        session.shouldfail = reason
                    return

        self._watcher = threading.Thread(target=watch, name="dynpool-xdist-stop", daemon=True)
        self._watcher.start()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        index = self.index_of.get(item.nodeid) if self.running else None
        if index is None:
            return (yield)
        self._log(f"+{index}\n")
        try:
            return (yield)
        finally:
            self._log(f"-{index}\n")

    def _log(self, line: str) -> None:
        # OSError: a thread left behind by a timeout, after the session closed the log.
        with contextlib.suppress(OSError):
            os.write(self._log_fd, line.encode())

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        index = self.index_of.get(report.nodeid) if self.running else None
        if index is not None:
            self.link.stamp(index)
            self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + (
                report.duration or 0.0
            )

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        index = self.index_of.get(nodeid) if self.running else None
        if index is not None:
            self.link.send_complete(index, self.durations.pop(nodeid, 0.0))

    def pytest_dynpool_run_finished(self, config: pytest.Config, stats: RunStats) -> None:
        claims = self.claims
        if claims is not None:  # count the items this worker ran, not those it could have
            plan = self.plan
            stolen = set(claims.stolen)
            never_here = [i for i in claims.held_back if i not in stolen] + claims.dropped
            for item in never_here:
                stats.jobs[plan.pooled[item].job_index].items -= 1
        xdist_worker_output(config)[WORKEROUTPUT_KEY] = stats_to_dict(stats)

    def pytest_unconfigure(self) -> None:
        self._done.set()
        if self._watcher is not None:
            self._watcher.join()
        os.close(self._log_fd)
