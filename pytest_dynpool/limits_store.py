"""The run's limits store: its options, opening it (or exit 4), its gate, its summary lines.

``--dynpool-backend`` and ``--dynpool-namespace``: flag, then environment
(``DYNPOOL_BACKEND``, ``DYNPOOL_NAMESPACE``), then ini. CI sets the store per
pipeline in the environment while the ini file is shared by every run, as
``--dynpool-base-url`` does. With ``memory`` (the default) nothing is opened
and nothing changes: the process's own scheduler and limiters are the caps.
A shared store is opened when the run loop starts, and its ``StoreGate`` kept
in ``config.stash[GATE_KEY]`` for the runtime and the HTTP fixtures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from .backends import (
    DEFAULT_NAMESPACE,
    URL_HINT,
    BackendError,
    LimitsBackend,
    open_backend,
    redact,
)
from .backends.gate import StoreGate
from .jobs import Job
from .options import add_flag_env_ini, flag_env_ini

BACKEND_ENV = "DYNPOOL_BACKEND"
NAMESPACE_ENV = "DYNPOOL_NAMESPACE"


@dataclass(frozen=True)
class StoreSettings:
    """Where the caps live; ``url`` "memory" is this process alone (the default)."""

    url: str
    namespace: str

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
        "Where caps, rates and adaptive state live: memory (this process; the default), "
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
        return open_backend(settings.url, settings.namespace)
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
GATE_KEY = pytest.StashKey[StoreGate]()
REPORTED_KEY = pytest.StashKey["ReportedItems"]()
STORE_REPORT_KEY = pytest.StashKey[StoreReport]()


def open_gate(config: pytest.Config, jobs: Sequence[Job]) -> StoreGate | None:
    """Open the shared store for this run's jobs (None with ``memory``); exit 4 if unreachable."""
    settings = config.stash[STORE_SETTINGS_KEY]
    if not settings.shared:
        return None
    start_rates = {job.name: (job.rate.per_second, job.cap) for job in jobs if job.rate}
    gate = StoreGate(open_store(settings), start_rates=start_rates)
    config.stash[GATE_KEY] = gate
    reported = config.stash[REPORTED_KEY] = ReportedItems()
    config.pluginmanager.register(reported, "dynpool-reported-items")
    return gate


def close_gate(config: pytest.Config, jobs: Sequence[Job], pooled: Sequence[str]) -> None:
    """Give back every lease, read the store's peaks, and keep the report for the summary."""
    gate = config.stash.get(GATE_KEY, None)
    if gate is None:
        return
    del config.stash[GATE_KEY]
    names = [job.name for job in jobs]
    store_peaks = gate.store_peaks(names) if gate.failure is None else {}
    reported = config.stash[REPORTED_KEY]
    config.pluginmanager.unregister(reported)
    config.stash[STORE_REPORT_KEY] = StoreReport(
        url=gate.backend.url,
        namespace=gate.backend.namespace,
        lease_seconds=gate.backend.lease_seconds,
        peaks=[(name, gate.local_peaks.get(name, 0), store_peaks.get(name)) for name in names],
        failure=gate.failure,
        lost_leases=list(gate.lost),
        waits=list(gate.waits),
        not_run=[nodeid for nodeid in pooled if nodeid not in reported.nodeids]
        if gate.failure is not None
        else [],
    )
    gate.close()


class ReportedItems:
    """A plugin while a shared store is open: which items reached the reports.

    The summary names the pooled items that did not, when the store failed.
    """

    def __init__(self) -> None:
        self.nodeids: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.nodeids.add(report.nodeid)


def _first(nodeids: Sequence[str], shown: int = 20) -> list[str]:
    if len(nodeids) <= shown:
        return list(nodeids)
    return [*nodeids[:shown], f"... and {len(nodeids) - shown} more"]
