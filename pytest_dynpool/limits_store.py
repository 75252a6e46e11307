"""The run's limits store: ``--dynpool-backend`` and ``--dynpool-namespace``, opened or exit 4.

Flag, then environment (``DYNPOOL_BACKEND``, ``DYNPOOL_NAMESPACE``), then ini:
CI sets the store per pipeline in the environment while the ini file is shared
by every run, as ``--dynpool-base-url`` does.
"""

from __future__ import annotations

import os
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
    group = parser.getgroup("dynpool", "run marked tests on a shared, capped thread pool")
    group.addoption(
        "--dynpool-backend",
        dest="dynpool_backend",
        default=None,
        metavar="URL",
        help="Where caps, rates and adaptive state live: memory (this process; the default), "
        "sqlite:///PATH (processes of one machine) or redis://HOST:PORT/DB (several "
        f"machines). Wins over ${BACKEND_ENV}, which wins over the ini key dynpool_backend.",
    )
    group.addoption(
        "--dynpool-namespace",
        dest="dynpool_namespace",
        default=None,
        metavar="NAME",
        help="The set of runs that share caps in the backend (default: "
        f"{DEFAULT_NAMESPACE!r}, every run using that store). Wins over ${NAMESPACE_ENV}, "
        "which wins over the ini key dynpool_namespace.",
    )
    parser.addini("dynpool_backend", "dynpool limits backend URL (memory, sqlite, redis).")
    parser.addini("dynpool_namespace", "dynpool namespace of runs sharing caps in the backend.")


def _pick(config: pytest.Config, option: str, env: str, ini: str) -> str:
    from_option = config.getoption(option, None)
    if from_option:
        return str(from_option)
    return os.environ.get(env, "") or str(config.getini(ini) or "")


def read_store_settings(config: pytest.Config) -> StoreSettings:
    """The chosen store, its URL's form checked (not yet opened): a usage error names the fix."""
    url = _pick(config, "dynpool_backend", BACKEND_ENV, "dynpool_backend").strip() or "memory"
    namespace = _pick(config, "dynpool_namespace", NAMESPACE_ENV, "dynpool_namespace").strip()
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
    if report.failure is not None:
        lines.append(f"limits store failed: {report.failure}; dispatch stopped (fail closed)")
    for lost in report.lost_leases:
        lines.append(f"warning: lease lost ({lost}); the store may have let another in")
    if report.not_run:
        lines.append(f"not run because the store failed: {len(report.not_run)} items")
        lines.extend(f"  {nodeid}" for nodeid in _first(report.not_run))
    return lines


def _first(nodeids: Sequence[str], shown: int = 20) -> list[str]:
    if len(nodeids) <= shown:
        return list(nodeids)
    return [*nodeids[:shown], f"... and {len(nodeids) - shown} more"]
