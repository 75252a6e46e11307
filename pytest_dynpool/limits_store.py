"""The run's limits store: its options, opening it (or exit 4), its gate, its summary lines.

``--dynpool-backend`` and ``--dynpool-namespace``: flag, then environment
(``DYNPOOL_BACKEND``, ``DYNPOOL_NAMESPACE``), then ini. CI sets the store per
pipeline in the environment while the ini file is shared by every run, as
``--dynpool-base-url`` does. With ``memory`` (the default) nothing is opened
and nothing changes: the process's own scheduler and limiters are the caps.
A shared store is opened by ``LimitsStorePlugin`` when the pooled phase asks
for its slot gate, and its ``StoreGate`` kept in ``config.stash[GATE_KEY]`` for
the HTTP fixtures too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from .backends import (
    DEFAULT_NAMESPACE,
    URL_HINT,
    BackendError,
    LimitsBackend,
    open_backend,
    redact,
    request_slots,
)
from .hookspecs import PoolControl
from .jobs import UNMARKED_JOB
from .options import add_flag_env_ini, flag_env_ini
from .summary import RunStats
from .xdist_role import STORE_INPUT_KEY, worker_input

if TYPE_CHECKING:  # the gate and its threads are imported only when a shared store opens
    from .backends.gate import StoreGate

BACKEND_ENV = "DYNPOOL_BACKEND"
# Unmarked tests under --dynpool-unmarked=pool follow xdist's rules (each process its own
# pool-sized job), so they take no lease: the store holds declared jobs only.
LOCAL_JOBS = (UNMARKED_JOB,)
NAMESPACE_ENV = "DYNPOOL_NAMESPACE"


@dataclass(frozen=True)
class StoreSettings:
    """Where the caps live; ``url`` "memory" is this process alone (the default)."""

    url: str
    namespace: str
    # The name of this process's leases in the store (None: ``host:pid``); an xdist
    # controller names each worker's, to give them back if the worker crashes.
    holder: str | None = None

    @property
    def shared(self) -> bool:
        return self.url != "memory"


def add_store_options(parser: pytest.Parser) -> None:
    add_flag_env_ini(
        parser,
        "--dynpool-backend",
        "dynpool_backend",
        BACKEND_ENV,
        "URL",
        "Where caps, rates and adaptive state live: memory (this process; the default, "
        "but under -n an SQLite store made for the run), "
        "sqlite:///PATH (processes of one machine) or redis://HOST:PORT/DB (several machines).",
    )
    add_flag_env_ini(
        parser,
        "--dynpool-namespace",
        "dynpool_namespace",
        NAMESPACE_ENV,
        "NAME",
        f"The set of runs that share caps in the backend (default {DEFAULT_NAMESPACE!r}: "
        "every run using that store).",
    )


def read_store_settings(config: pytest.Config) -> StoreSettings:
    """The chosen store, its URL's form checked (not yet opened): a usage error names the fix."""
    url = flag_env_ini(config, "dynpool_backend", BACKEND_ENV).strip() or "memory"
    namespace = flag_env_ini(config, "dynpool_namespace", NAMESPACE_ENV).strip()
    namespace = namespace or DEFAULT_NAMESPACE
    if any(ch.isspace() for ch in namespace):
        raise pytest.UsageError(
            f"--dynpool-namespace / {NAMESPACE_ENV} / dynpool_namespace: "
            f"expected a name without spaces, got {namespace!r}"
        )
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("memory", "sqlite", "redis", "rediss"):
        raise pytest.UsageError(
            f"--dynpool-backend / {BACKEND_ENV} / dynpool_backend: {redact(url)!r} names no "
            f"known limits backend; {URL_HINT}"
        )
    return StoreSettings("memory" if scheme == "memory" else url, namespace)


def open_store(settings: StoreSettings) -> LimitsBackend:
    """Open the store now; unreachable or malformed is a usage error (exit 4) naming the URL."""
    try:
        return open_backend(settings.url, settings.namespace, settings.holder)
    except (ValueError, BackendError) as error:
        raise pytest.UsageError(
            f"--dynpool-backend: the limits store cannot be used: {error}"
        ) from None


@dataclass
class StoreReport:
    """What the summary says of the store: where, and each job's peaks."""

    url: str
    namespace: str
    lease_seconds: float
    # (job, this process's peak, the store's peak over all processes or None)
    peaks: list[tuple[str, int, int | None]]
    failure: str | None
    lost_leases: list[str]
    not_run: list[str]
    # Seconds from a job's refusal by the store to its next grant, in this process.
    waits: list[float]


def format_store_summary(report: StoreReport) -> list[str]:
    """Lines under the dynpool table: the store, peaks side by side, and what went wrong."""
    lines = [
        f"limits store: {report.url}, namespace {report.namespace!r}, "
        f"leases of {report.lease_seconds:g} s"
    ]
    if report.peaks:
        width = max(len(job) for job, _, _ in report.peaks)
        lines.append(f"  {'job'.ljust(width)}  peak here  peak in store (all processes)")
        for job, here, store in report.peaks:
            shown = "?" if store is None else str(store)
            lines.append(f"  {job.ljust(width)}  {here:>9}  {shown:>13}")
    if report.waits:
        mean = sum(report.waits) / len(report.waits)
        lines.append(
            f"waits for the store: {len(report.waits)}, longest {max(report.waits):.2f} s, "
            f"mean {mean:.2f} s"
        )
    if report.failure is not None:
        lines.append(f"limits store failed: {report.failure}; dispatch stopped (fail closed)")
    for lost in report.lost_leases:
        lines.append(f"warning: lease lost ({lost}); the store may have let another in")
    if report.not_run:
        lines.append(f"not run because the store failed: {len(report.not_run)} items")
        lines.extend(f"  {nodeid}" for nodeid in _first(report.not_run))
    return lines


STORE_SETTINGS_KEY = pytest.StashKey[StoreSettings]()
GATE_KEY = pytest.StashKey["StoreGate"]()
STORE_PLUGIN = "dynpool-limits-store"


def store_for_xdist_run(config: pytest.Config, directory: str, run_id: str) -> StoreSettings:
    """The store every xdist worker uses: the user's, else an SQLite file made for the run.

    The file lives in the controller's temporary directory (removed at the end);
    its namespace is unique to the run, so nothing outside the run shares it.
    """
    chosen = read_store_settings(config)
    if chosen.shared:
        return chosen
    return StoreSettings(f"sqlite://{directory}/limits.sqlite", f"xdist-{run_id}")


def read_store_peaks(settings: StoreSettings, jobs: Sequence[str]) -> dict[str, int]:
    """Each job's peak in the store (leases held at once, all processes); {} if it fails.

    Local jobs (``LOCAL_JOBS``) have none: they are left out.
    """
    jobs = [job for job in jobs if job not in LOCAL_JOBS]
    try:
        backend = open_store(settings)
    except pytest.UsageError:
        return {}
    try:
        return {job: backend.peak(job) for job in jobs}
    except BackendError:
        return {}
    finally:
        backend.close()


def _handed_store(config: pytest.Config) -> StoreSettings | None:
    """On an xdist worker, the store its controller named (see ``store_for_xdist_run``)."""
    handed = (worker_input(config) or {}).get(STORE_INPUT_KEY)
    if handed is None:
        return None
    url, namespace, holder = handed
    return StoreSettings(str(url), str(namespace), str(holder))


def give_back_leases(settings: StoreSettings, holder: str, jobs: Sequence[str]) -> int:
    """Release every lease of a crashed xdist worker's ``holder`` now, and fence it off.

    ``jobs``: the run's job names (their request slots are looked in too).
    Raises ``pytest.UsageError`` if the store cannot be opened, ``BackendError``
    if it fails: the leases then come back when they expire.
    """
    backend = open_store(settings)
    try:
        names = [*jobs, *(request_slots(job) for job in jobs)]
        return backend.release_holder(holder, names)
    finally:
        backend.close()


def register_store_plugin(config: pytest.Config) -> None:
    """Read the store options; with a shared store, register the plugin that runs it."""
    settings = _handed_store(config) or read_store_settings(config)
    config.stash[STORE_SETTINGS_KEY] = settings
    if settings.shared:
        config.pluginmanager.register(LimitsStorePlugin(settings), STORE_PLUGIN)


class LimitsStorePlugin:
    """A shared limits store's life in one run, through the pool's hooks.

    Opened when the pooled phase asks for its slot gate (unreachable: exit 4);
    told of the pool when it starts, so that a release seen by the store
    resumes a deferred job at once and a failed store stops dispatch; closed
    when the pooled phase ends, every lease still held given back.
    """

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings
        self.gate: StoreGate | None = None
        self.session: pytest.Session | None = None
        self.reported: set[str] = set()
        self.report: StoreReport | None = None

    def pytest_report_header(self) -> str:
        settings = self.settings
        return f"dynpool: limits store {redact(settings.url)}, namespace {settings.namespace!r}"

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_dynpool_slot_gate(self, config: pytest.Config) -> StoreGate:
        from .backends.gate import StoreGate

        gate = self.gate = StoreGate(open_store(self.settings), local_jobs=LOCAL_JOBS)
        config.stash[GATE_KEY] = gate
        return gate

    def pytest_dynpool_pool_started(self, config: pytest.Config, pool: PoolControl) -> None:
        gate = self.gate
        if gate is None:
            return
        names = {job.name for job in pool.jobs}
        gate.share_start_rates(
            {job.name: (job.rate.per_second, job.cap) for job in pool.jobs if job.rate}
        )

        def resume(jobs: list[str]) -> None:
            for job in jobs:
                if job in names:
                    pool.resume_job(job)

        gate.listen(on_release=resume, on_failure=self._store_failed)

    def _store_failed(self, message: str) -> None:
        """Nothing more starts (fail closed); the run ends as interrupted, saying why."""
        if self.session is not None:
            self.session.shouldstop = f"dynpool: the limits store failed: {message}"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reported.add(report.nodeid)

    def pytest_dynpool_run_finished(self, config: pytest.Config, stats: RunStats) -> None:
        gate, self.gate = self.gate, None
        if gate is None:
            return
        del config.stash[GATE_KEY]
        self.report = close_gate(gate, [s.job.name for s in stats.jobs], self._not_reported())

    def _not_reported(self) -> list[str]:
        items = self.session.items if self.session is not None else []
        return [item.nodeid for item in items if item.nodeid not in self.reported]

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.report is None:
            return
        terminalreporter.write_sep("=", "dynpool limits store")
        for line in format_store_summary(self.report):
            terminalreporter.write_line(line)


def close_gate(gate: StoreGate, jobs: Sequence[str], not_reported: Sequence[str]) -> StoreReport:
    """Give back every lease, read the store's peaks: the report for the summary."""
    jobs = [name for name in jobs if gate.shares(name)]
    store_peaks = gate.store_peaks(jobs) if gate.failure is None else {}
    report = StoreReport(
        url=gate.backend.url,
        namespace=gate.backend.namespace,
        lease_seconds=gate.backend.lease_seconds,
        peaks=[(name, gate.local_peaks.get(name, 0), store_peaks.get(name)) for name in jobs],
        failure=gate.failure,
        lost_leases=list(gate.lost),
        waits=list(gate.waits),
        not_run=list(not_reported) if gate.failure is not None else [],
    )
    gate.close()
    return report


def _first(nodeids: Sequence[str], shown: int = 20) -> list[str]:
    if len(nodeids) <= shown:
        return list(nodeids)
    return [*nodeids[:shown], f"... and {len(nodeids) - shown} more"]
