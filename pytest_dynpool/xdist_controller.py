"""On the xdist controller (``pytest -n N``): the run's limits store, hand out items, one summary.

Imported only in a distributed run, where xdist is installed. The controller
names the limits store every worker uses (the user's, or an SQLite file it makes
for the run), never collects, learns every item's job from the plan a worker
wrote into the side channel, splits the run (``xdist_partition``), and sends
each worker all of its items at once and then shutdown. With stealing
(``xdist_balance``) an item may run in another worker than the one it was sent
to: its completion is accepted from whichever worker ran it, once.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from typing import Any

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScheduling
from xdist.workermanage import WorkerController

from .backends import BackendError
from .limits_store import give_back_leases, read_store_peaks, store_for_xdist_run
from .pytest_compat import xdist_check_same_collection
from .runtime.outcomes import outcome_in
from .summary import RunStats, align_columns, format_summary, job_table_rows
from .xdist_balance import RunClaims, steals
from .xdist_channel import NO_JOB, USAGE_ERROR_KEY, WORKEROUTPUT_KEY, SideChannel
from .xdist_partition import partition
from .xdist_role import STORE_INPUT_KEY, WORKERINPUT_KEY
from .xdist_stats import format_balance, merge
from .xdist_summary import ReportedItems, apply_store_peaks, interrupted_line, stats_from_reports


class PartitionScheduling(LoadScheduling):
    """xdist's load scheduling, but every worker gets its whole part up front.

    A worker runs several items at once on its own pool, so it needs them
    all before it starts; the limits store holds each job's cap across the
    workers. After a crash, the items the dead worker had not finished go to
    its replacement. Without any pooled item (no marker), this is xdist's own
    ``load``.
    """

    def __init__(
        self,
        config: pytest.Config,
        log: Producer,
        channel: SideChannel,
        reported: set[str],
        claims: RunClaims | None = None,
    ) -> None:
        super().__init__(config, log)
        self.channel = channel
        # With stealing on: any worker may run any pooled item, claimed in the store.
        self.claims = claims
        # Items left in a worker that ended normally: another worker took them.
        self.elsewhere: set[int] = set()
        # Node ids whose reports reached the controller: a worker that runs several
        # items at once can die between an item's reports and its completion.
        self.reported = reported
        self.partitioned = False
        self.parts: dict[WorkerController, list[int]] = {}
        self.orphans: list[list[int]] = []
        self.pooled: set[int] = set()

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
        jobs = [
            [i for i, j in enumerate(plan.job_of_item) if j == index]
            for index in range(len(plan.jobs))
        ]
        exclusive = [i for i, j in enumerate(plan.job_of_item) if j == NO_JOB]
        parts = partition(len(self.nodes), jobs, exclusive)
        pooled = set(range(len(collection))) - set(exclusive)
        self.pooled = pooled
        self.channel.write_parts(
            {
                node.gateway.id: [i for i in part if i in pooled]
                for node, part in zip(self.nodes, parts, strict=True)
            }
        )
        for node, part in zip(self.nodes, parts, strict=True):
            self._give(node, part)

    def _give(self, node: WorkerController, part: list[int]) -> None:
        if node not in self.parts and self.parts:  # a replacement: its share joins the parts
            shares = self.channel.read_parts()
            shares[node.gateway.id] = [i for i in part if i in self.pooled]
            self.channel.write_parts(shares)
        self.parts[node] = part
        self.node2pending[node].extend(part)
        if part:
            node.send_runtest_some(part)
        node.shutdown()

    def mark_test_complete(
        self, node: WorkerController, item_index: int, duration: float = 0
    ) -> None:
        """From whichever worker ran the item: with stealing, not always the one it was sent to."""
        if not self.partitioned or self.claims is None:
            super().mark_test_complete(node, item_index, duration)
            return
        self._forget(item_index)
        self.check_schedule(node, duration=duration)

    def _forget(self, index: int) -> None:
        """``index`` is done (or blamed for a crash): no worker owes it any more."""
        self.elsewhere.discard(index)
        for pending in self.node2pending.values():
            if index in pending:
                pending.remove(index)

    @property
    def tests_finished(self) -> bool:
        return bool(super().tests_finished) and not self.elsewhere

    def check_schedule(self, node: WorkerController, duration: float = 0) -> None:
        if not self.partitioned:
            super().check_schedule(node, duration)
            return
        if node.shutting_down or node in self.parts:
            return
        # A replacement for a crashed worker (or a late one): the dead one's part, or nothing.
        part = self.orphans.pop(0) if self.orphans else []
        taken = set(part)
        self.pending[:] = [index for index in self.pending if index not in taken]
        self._give(node, part)

    def remove_node(self, node: WorkerController) -> str | None:
        if not self.partitioned:
            crash_item: str | None = super().remove_node(node)
            return crash_item
        assert self.collection is not None
        collection = self.collection
        pending = [i for i in self.node2pending.pop(node) if collection[i] not in self.reported]
        had_part = self.parts.pop(node, None) is not None
        if self.claims is not None and "exitstatus" in getattr(node, "workeroutput", {}):
            # Ended normally: what it still owes, other workers claimed and run.
            self.elsewhere.update(pending)
            return None
        started = self.channel.in_flight(node.gateway.id)
        if self.claims is not None:
            # Items it stole are its too: in flight when it died, or ended with their
            # reports lost with it (their owners dropped them as claimed).
            pending += [
                i
                for i in self.channel.ever_started(node.gateway.id)
                if i not in pending and collection[i] not in self.reported
            ]
        if not pending:
            return None
        # xdist reports the first pending item as the one that crashed the worker:
        # put the item that started last of those in flight first.
        in_flight = [i for i in started if i in pending]
        rest = [i for i in pending if i not in in_flight]
        ordered = in_flight + rest
        crashed = ordered.pop(0)
        if self.claims is not None:
            self._forget(crashed)
            # Its claims go, so that the replacement (or the owner) may run them.
            self.claims.unclaim(ordered, node.gateway.id)
        if ordered and had_part:
            self.orphans.append(sorted(ordered))
            self.pending.extend(ordered)
        for other in self.nodes:
            self.check_schedule(other)
        crashed_id: str = collection[crashed]
        return crashed_id


class XdistController:
    """The controller's plugin: store, side channel, scheduler, -x across workers, one summary."""

    def __init__(self, config: pytest.Config, threads_per_worker: int) -> None:
        self.config = config
        self.threads_per_worker = threads_per_worker
        self.directory = tempfile.mkdtemp(prefix="dynpool-xdist-")
        self.channel = SideChannel(self.directory)
        self.store = store_for_xdist_run(config, self.directory, uuid.uuid4().hex)
        self.per_worker: list[tuple[str, dict[str, Any]]] = []
        self.holders: dict[WorkerController, str] = {}
        self.processes = 0  # most workers alive at once
        self.scheduling: PartitionScheduling | None = None
        self.started: set[str] = set()  # for a summary when the workers' figures never come
        self.notes: list[str] = []  # lines for the summary: what the controller did
        self.reported: set[str] = set()
        self.failures = 0
        self.maxfail: int = config.getoption("maxfail", 0) or 0
        self.claims: RunClaims | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: WorkerController) -> None:
        node.workerinput[WORKERINPUT_KEY] = self.directory
        # Each worker's leases carry a name of their own (a replacement gets a new one),
        # so that a crash gives back exactly the dead worker's slots.
        holder = self.holders[node] = f"xdist-{node.gateway.id}-{uuid.uuid4().hex[:12]}"
        node.workerinput[STORE_INPUT_KEY] = [self.store.url, self.store.namespace, holder]
        self.processes = max(self.processes, len(self.holders))

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Producer) -> LoadScheduling:
        if steals(config, self.store.url):
            self.claims = RunClaims(self.store, str(self.channel.directory))
        self.scheduling = PartitionScheduling(config, log, self.channel, self.reported, self.claims)
        return self.scheduling

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: WorkerController, error: object | None) -> None:
        output = getattr(node, "workeroutput", {})
        usage_error = output.get(USAGE_ERROR_KEY)
        if usage_error is not None:  # a worker's plan: the same message and exit 4 as without -n
            raise pytest.UsageError(*usage_error)
        data = output.get(WORKEROUTPUT_KEY)
        if data is not None:
            self.per_worker.append((node.gateway.id, data))
        holder = self.holders.pop(node, None)
        if error is not None and holder is not None:
            self._give_back_leases(node.gateway.id, holder)

    def _give_back_leases(self, worker: str, holder: str) -> None:
        """A worker is down (xdist says so, before it starts the replacement): its slots
        come back now, not when its leases expire, and it is fenced off in the store."""
        plan = self.channel.read_plan()
        jobs = [job.name for job in plan.jobs] if plan is not None else []
        try:
            given_back = give_back_leases(self.store, holder, jobs)
        except (pytest.UsageError, BackendError) as error:
            self.notes.append(
                f"xdist: the leases of crashed worker {worker} could not be given back "
                f"({error}); they came back when they expired"
            )
            return
        self.notes.append(
            f"xdist: worker {worker} crashed; leases it held, given back at once: {given_back}"
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """-x / --maxfail counted over all workers, as xdist does: then every worker stops.

        Like xdist, a crashed worker's report (phase ``???``) does not count.
        """
        if report.failed and report.when in ("setup", "call", "teardown"):
            self._count_failure()
        # Its outcome reached us: a crash of its worker must not run it again. An item
        # whose log start or passed setup came, but not its outcome, runs again instead.
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.reported.add(report.nodeid)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.started.add(nodeid)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # xdist passes on each distinct collection error once
            self._count_failure()

    def _count_failure(self) -> None:
        self.failures += 1
        if self.maxfail and self.failures == self.maxfail:
            self.channel.request_stop(f"stopping after {self.failures} failures")

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, exitstatus: int
    ) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        lines = self._summary_lines(terminalreporter if interrupted else None)
        if lines:
            terminalreporter.write_sep("=", "dynpool")
            for line in [*lines, *self.notes]:
                terminalreporter.write_line(line)

    def _summary_lines(self, interrupted: pytest.TerminalReporter | None) -> list[str]:
        """The workers' figures merged, each job's peak from the store; after an
        interrupt that kept some workers' figures from coming, the reports the
        terminal received (``interrupted`` is the terminal then)."""
        collection = self.scheduling.collection if self.scheduling is not None else None
        plan = self.channel.read_plan()
        if interrupted is not None and len(self.per_worker) < self.processes:
            if plan is None or collection is None:
                return []
            items = self._reported_items(interrupted)
            stats = stats_from_reports(plan, collection, items, self._threads())
            self._apply_store_peaks(stats)
            reports = len(items.started)
            lines = align_columns(job_table_rows(stats))
            if stats.not_started:
                lines.append(f"not started: {stats.not_started} pooled items (none reported)")
            return [*lines, interrupted_line(reports, len(self.per_worker), self.processes)]
        if not self.per_worker:
            return []
        run = merge(self.per_worker)
        from_store = self._apply_store_peaks(run.stats)
        return [*format_summary(run.stats), format_balance(run, from_store)]

    def _reported_items(self, terminal: pytest.TerminalReporter) -> ReportedItems:
        """Each item's outcome as the terminal counted it, read from its reports."""
        items = ReportedItems(started=set(self.started))
        for category, reports in terminal.stats.items():
            for report in reports:
                if isinstance(report, pytest.TestReport):
                    outcome, subtest_failed = outcome_in(report, category)
                    seconds = report.duration or 0.0
                    items.add(report.nodeid, outcome, subtest_failed, seconds)
        return items

    def _threads(self) -> int:
        return self.threads_per_worker * self.processes

    def _apply_store_peaks(self, stats: RunStats) -> bool:
        peaks = read_store_peaks(self.store, [job_stats.job.name for job_stats in stats.jobs])
        apply_store_peaks(stats, peaks)
        return bool(peaks)

    def pytest_unconfigure(self) -> None:
        if self.claims is not None:
            self.claims.forget()
        shutil.rmtree(self.directory, ignore_errors=True)
