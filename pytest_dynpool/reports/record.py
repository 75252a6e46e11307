"""What the reports show: plain records of one run, and how records of several processes merge.

No pytest here. The recorder (``recorder.py``) fills these on the main thread;
the writers (JSON, HTML, step summary) only read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

PHASES = ("setup", "call", "teardown")


@dataclass
class ItemRecord:
    """One test item: where and when it ran, and how each phase ended.

    ``start`` and ``end`` are seconds from the run's start; ``phases`` maps
    ``setup``/``call``/``teardown`` to pytest's outcome of that phase
    (``passed``, ``failed``, ``skipped``). ``worker`` is the thread that ran the
    item (``MainThread`` for exclusive items), ``process`` the xdist worker id.
    """

    nodeid: str
    job: str | None
    worker: str = "MainThread"
    process: str | None = None
    start: float = 0.0
    end: float = 0.0
    phases: dict[str, str] = field(default_factory=dict)
    xfail: bool = False
    timed_out: bool = False

    @property
    def outcome(self) -> str:
        """One word as pytest's summary counts it: error, failed, xfailed, xpassed, ...

        ``interrupted``: set up but never called (the run was interrupted in it).
        """
        phases = self.phases
        if phases.get("setup") == "failed":
            return "error"
        call = phases.get("call")
        if call == "failed":
            return "failed"
        if phases.get("teardown") == "failed":
            return "error"
        if "skipped" in (phases.get("setup"), call):
            return "xfailed" if self.xfail else "skipped"
        if call == "passed":
            return "xpassed" if self.xfail else "passed"
        # Set up, never called: Ctrl-C, KeyboardInterrupt or pytest.exit() ended it.
        return "interrupted" if phases else "not run"


@dataclass(frozen=True)
class CapChange:
    """A job's effective cap became ``cap`` at ``at`` seconds from the run's start."""

    at: float
    cap: int


@dataclass(frozen=True)
class HttpJobRecord:
    """What a job's HTTP client saw; every attempt counts, retries too. Times in seconds."""

    job: str
    requests: int
    status_classes: Mapping[str, int]
    overloaded: int  # answers 429 or 503
    retries: int
    errors: int  # no answer at all
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    effective_cap: int
    min_effective_cap: int
    cap_changes: Sequence[CapChange] = ()
    overloaded_at: Sequence[float] = ()  # when each 429/503 arrived, from the run's start


@dataclass(frozen=True)
class JobRecord:
    """One job: its limits, what it ran, and how long it kept the run busy."""

    name: str
    declared_at: str
    cap: int
    declared_cap: int
    rate: str | None
    declared_rate: str | None
    adaptive: bool
    items: int
    outcomes: Mapping[str, int]
    peak_in_flight: int
    busy_seconds: float
    bound_seconds: float  # the job's own term of the lower bound (bounds.job_bound)
    effective_cap: int  # at the end: below cap while adaptive mode backs off
    min_effective_cap: int


@dataclass
class RunRecord:
    """A whole run: the pool, its jobs and items, and the HTTP traffic per job."""

    workers: int | None
    backend: str  # the limits store's URL, password hidden: memory, sqlite:///..., redis://...
    started_at: str  # ISO 8601, UTC
    namespace: str | None = None  # the runs that share caps in a shared store
    wall_seconds: float = 0.0
    pool_wall_seconds: float = 0.0
    lower_bound_seconds: float = 0.0
    bounded_by: str = "nothing"  # pool, cap, rate, slots, item, nothing (Bound.term)
    bounding_job: str | None = None
    session_teardown_seconds: float = 0.0  # in the bound, after its term (Bound.then)
    peak_in_flight: int = 0
    exit_status: int | None = None
    interrupted: bool = False
    not_started: int = 0
    timed_out: list[str] = field(default_factory=list)
    threads_left_behind: int = 0
    processes: list[str] = field(default_factory=list)
    jobs: list[JobRecord] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    http: list[HttpJobRecord] = field(default_factory=list)

    def jobs_by_bound(self) -> list[JobRecord]:
        """Jobs ordered by how much each held the run back: its own bound, largest first."""
        return sorted(self.jobs, key=lambda job: (-job.bound_seconds, job.name))


def merge_records(records: Iterable[RunRecord]) -> RunRecord:
    """One record of several processes (pytest-xdist workers, each recording its own items).

    Items keep their process; a job seen by several processes counts the items,
    outcomes and busy time of all, with the highest peak of any one process;
    HTTP figures add up, with the latencies' percentiles of the worst process
    (the raw latencies are not kept). The run's wall time is the longest one.
    """
    records = list(records)
    if not records:
        raise ValueError("merge_records needs at least one record")
    merged = replace(
        records[0],
        jobs=[],
        items=[],
        http=[],
        timed_out=[],
        processes=[],
        not_started=0,
        threads_left_behind=0,
    )
    jobs: dict[str, JobRecord] = {}
    http: dict[str, HttpJobRecord] = {}
    for record in records:
        merged.wall_seconds = max(merged.wall_seconds, record.wall_seconds)
        merged.pool_wall_seconds = max(merged.pool_wall_seconds, record.pool_wall_seconds)
        merged.not_started += record.not_started
        merged.interrupted = merged.interrupted or record.interrupted
        merged.timed_out += record.timed_out
        merged.threads_left_behind += record.threads_left_behind
        merged.processes += record.processes
        merged.items += record.items
        for job in record.jobs:
            jobs[job.name] = _merge_job(jobs[job.name], job) if job.name in jobs else job
        for traffic in record.http:
            http[traffic.job] = (
                _merge_http(http[traffic.job], traffic) if traffic.job in http else traffic
            )
    merged.jobs = list(jobs.values())
    merged.http = list(http.values())
    return merged


def _added(first: Mapping[str, int], second: Mapping[str, int]) -> dict[str, int]:
    return {key: first.get(key, 0) + second.get(key, 0) for key in {*first, *second}}


def _merge_job(first: JobRecord, second: JobRecord) -> JobRecord:
    return replace(
        first,
        items=first.items + second.items,
        outcomes=_added(first.outcomes, second.outcomes),
        peak_in_flight=max(first.peak_in_flight, second.peak_in_flight),
        busy_seconds=first.busy_seconds + second.busy_seconds,
        bound_seconds=first.bound_seconds + second.bound_seconds,
    )


def _worst(first: float | None, second: float | None) -> float | None:
    values = [value for value in (first, second) if value is not None]
    return max(values) if values else None


def _merge_http(first: HttpJobRecord, second: HttpJobRecord) -> HttpJobRecord:
    return replace(
        first,
        requests=first.requests + second.requests,
        status_classes=_added(first.status_classes, second.status_classes),
        overloaded=first.overloaded + second.overloaded,
        retries=first.retries + second.retries,
        errors=first.errors + second.errors,
        latency_p50=_worst(first.latency_p50, second.latency_p50),
        latency_p95=_worst(first.latency_p95, second.latency_p95),
        latency_p99=_worst(first.latency_p99, second.latency_p99),
        min_effective_cap=min(first.min_effective_cap, second.min_effective_cap),
        cap_changes=sorted([*first.cap_changes, *second.cap_changes], key=lambda c: c.at),
        overloaded_at=sorted([*first.overloaded_at, *second.overloaded_at]),
    )
