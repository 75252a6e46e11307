"""On the xdist controller (``pytest -n N``): hand out items and cap shares, merge the summary.

Imported only in a distributed run, where xdist is installed. The controller
never collects; it learns every item's job from the plan a worker wrote into
the side channel, splits the run (``xdist_partition``), writes each worker's
cap shares, sends each worker all of its items at once and then shutdown.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScheduling
from xdist.workermanage import WorkerController

from .limits_store import STORE_SETTINGS_KEY
from .pytest_compat import xdist_check_same_collection
from .summary import format_summary
from .xdist_channel import NO_JOB, WORKEROUTPUT_KEY, SideChannel
from .xdist_partition import JobItems, WorkerShare, partition
from .xdist_role import WORKERINPUT_KEY
from .xdist_stats import format_balance, merge


class PartitionScheduling(LoadScheduling):
    """xdist's load scheduling, but every worker gets its whole part up front.

    A worker's part must be known before it starts: its cap shares only hold
    the caps if no other worker runs the same share. After a crash, the items
    the dead worker had not finished, with its shares, go to its replacement.
    Without any pooled item (no marker), this is xdist's own ``load``.
    """

    def __init__(
        self, config: pytest.Config, log: Producer, channel: SideChannel, reported: set[str]
    ) -> None:
        super().__init__(config, log)
        self.channel = channel
        # Node ids whose reports reached the controller: a worker that runs several
        # items at once can die between an item's reports and its completion.
        self.reported = reported
        self.partitioned = False
        self.job_names: list[str] = []
        self.shares: dict[WorkerController, WorkerShare] = {}
        self.orphans: list[WorkerShare] = []

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.partitioned or self.collection is not None:  # type: ignore[has-type]
            for node in self.nodes:
                self.check_schedule(node)
            return
        plan = self.channel.read_plan()
        if plan is None or all(job == NO_JOB for job in plan.job_of_item):
            super().schedule()  # nothing pooled: xdist's own scheduling
            return
        if not xdist_check_same_collection(self):
            return
        collection: list[str] = next(iter(self.node2collection.values()))
        self.collection = collection
        if len(plan.job_of_item) != len(collection):
            raise RuntimeError("pytest-dynpool: the workers' plan does not match the collection")
        self.partitioned = True
        self.job_names = [job.name for job in plan.jobs]
        # A shared limits store (--dynpool-backend) holds every cap across the workers
        # itself: then each worker gets the whole cap, and the store decides.
        store = self.config.stash.get(STORE_SETTINGS_KEY, None)
        whole_caps = store is not None and store.shared
        jobs = [
            JobItems(
                job.cap,
                [i for i, j in enumerate(plan.job_of_item) if j == index],
                job.cap_per_worker or whole_caps,
            )
            for index, job in enumerate(plan.jobs)
        ]
        exclusive = [i for i, j in enumerate(plan.job_of_item) if j == NO_JOB]
        for node, share in zip(
            self.nodes, partition(len(self.nodes), jobs, exclusive), strict=True
        ):
            self._give(node, share)

    def _give(self, node: WorkerController, share: WorkerShare) -> None:
        self.shares[node] = share
        caps = {self.job_names[job]: cap for job, cap in share.caps.items()}
        self.channel.write_share(node.gateway.id, caps)
        self.node2pending[node].extend(share.items)
        if share.items:
            node.send_runtest_some(share.items)
        node.shutdown()

    def check_schedule(self, node: WorkerController, duration: float = 0) -> None:
        if not self.partitioned:
            super().check_schedule(node, duration)
            return
        if node.shutting_down or node in self.shares:
            return
        # A replacement for a crashed worker (or a late one): the dead one's part, or nothing.
        share = self.orphans.pop(0) if self.orphans else WorkerShare()
        taken = set(share.items)
        self.pending[:] = [index for index in self.pending if index not in taken]
        self._give(node, share)

    def remove_node(self, node: WorkerController) -> str | None:
        if not self.partitioned:
            crash_item: str | None = super().remove_node(node)
            return crash_item
        assert self.collection is not None
        collection = self.collection
        pending = [i for i in self.node2pending.pop(node) if collection[i] not in self.reported]
        share = self.shares.pop(node, None)
        if not pending:
            return None
        # xdist reports the first pending item as the one that crashed the worker:
        # put the item that started last of those in flight first.
        in_flight = [i for i in self.channel.in_flight(node.gateway.id) if i in pending]
        rest = [i for i in pending if i not in in_flight]
        ordered = in_flight + rest
        crashed = ordered.pop(0)
        if ordered and share is not None:
            self.orphans.append(WorkerShare(items=sorted(ordered), caps=share.caps))
            self.pending.extend(ordered)
        for other in self.nodes:
            self.check_schedule(other)
        crashed_id: str = collection[crashed]
        return crashed_id


class XdistController:
    """The controller's plugin: side channel, scheduler, -x across workers, one summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.directory = tempfile.mkdtemp(prefix="dynpool-xdist-")
        self.channel = SideChannel(self.directory)
        self.per_worker: list[tuple[str, dict[str, Any]]] = []
        self.reported: set[str] = set()
        self.failures = 0
        self.maxfail: int = config.getoption("maxfail", 0) or 0

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: WorkerController) -> None:
        node.workerinput[WORKERINPUT_KEY] = self.directory

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Producer) -> LoadScheduling:
        return PartitionScheduling(config, log, self.channel, self.reported)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: WorkerController, error: object | None) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if data is not None:
            self.per_worker.append((node.gateway.id, data))

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.reported.add(nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """-x / --maxfail counted over all workers, as xdist does: then every worker stops.

        Like xdist, a crashed worker's report (phase ``???``) does not count.
        """
        if report.failed and report.when in ("setup", "call", "teardown"):
            self._count_failure()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # xdist passes on each distinct collection error once
            self._count_failure()

    def _count_failure(self) -> None:
        self.failures += 1
        if self.maxfail and self.failures == self.maxfail:
            self.channel.request_stop(f"stopping after {self.failures} failures")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.per_worker:
            return
        run = merge(self.per_worker)
        terminalreporter.write_sep("=", "dynpool")
        for line in format_summary(run.stats):
            terminalreporter.write_line(line)
        terminalreporter.write_line(format_balance(run))

    def pytest_unconfigure(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
