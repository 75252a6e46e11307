"""Run-time state of each job's HTTP traffic: its limits, its effective cap and its figures.

One ``JobTraffic`` per job name lives in a ``TrafficRegistry`` in ``config.stash``;
every test of the job, on any thread and in any event loop, goes through the
same one. No pytest and no httpx here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from .. import clock
from ..limits import AdaptiveCap, Clock, ConcurrencyLimiter, TokenBucket
from ..model import Job, Rate
from .shared_limits import SharedRequestLimits

if TYPE_CHECKING:
    from ..backends.gate import StoreGate

if TYPE_CHECKING:
    from ..reports.record import HttpJobRecord

OVERLOAD_STATUSES = frozenset({429, 503})
# Longest Retry-After we wait out: a server asking for minutes would stall the suite.
MAX_RETRY_AFTER_SECONDS = 10.0


@dataclass
class HttpStats:
    """What the client saw of one job's requests; every attempt counts, retries too."""

    requests: int = 0
    status_classes: dict[str, int] = field(default_factory=dict)
    overloaded: int = 0
    retries: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    # When each 429/503 arrived and each change of the effective cap, on the job's clock:
    # the reports draw them over time.
    overloaded_at: list[float] = field(default_factory=list)
    cap_changes: list[tuple[float, int]] = field(default_factory=list)

    def percentile(self, fraction: float) -> float | None:
        """Nearest-rank percentile of the latencies (seconds), None without any."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = max(1, -(-len(ordered) * fraction // 1))  # ceil without math
        return ordered[int(rank) - 1]


class JobTraffic:
    """A job's shared request limiter, rate, adaptive cap, pause and statistics.

    ``effective_cap`` is what the scheduler dispatches tests against and what
    bounds the job's requests in flight: the job's cap, or less while adaptive
    mode backs off. Listeners (the HTTP plugin, which passes it on to the
    pool) hear of every change.
    """

    def __init__(
        self, job: Job, clock: Clock = clock.monotonic, shared: SharedRequestLimits | None = None
    ) -> None:
        self.job = job
        # The run's shared limits store (SQLite, Redis): its limits apply on top of ours.
        self.shared = shared
        self._clock = clock
        self._lock = threading.Lock()
        self._cap_lock = threading.Lock()
        self.requests = ConcurrencyLimiter(job.cap)
        self.request_rate = (
            TokenBucket(job.rate.per_second, burst=job.cap, clock=clock)
            if job.rate is not None
            else None
        )
        self.adaptive = AdaptiveCap(job.cap) if job.adaptive else None
        self.stats = HttpStats()
        self._paused_until = 0.0
        self._listeners: list[Callable[[], None]] = []

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def cap(self) -> int:
        return self.job.cap

    @property
    def rate(self) -> Rate | None:
        return self.job.rate

    @property
    def effective_cap(self) -> int:
        return self.adaptive.cap if self.adaptive is not None else self.job.cap

    @property
    def min_effective_cap(self) -> int:
        return self.adaptive.minimum_seen if self.adaptive is not None else self.job.cap

    @property
    def generation(self) -> int:
        """Changes at every decrease of the effective cap (see ``AdaptiveCap``)."""
        return self.adaptive.generation if self.adaptive is not None else 0

    def on_cap_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each change of ``effective_cap`` (on the changing thread)."""
        self._listeners.append(listener)

    def seconds_paused(self) -> float:
        """How long new requests must still wait out a server's Retry-After."""
        with self._lock:
            local = max(0.0, self._paused_until - self._clock())
        if self.shared is None:
            return local
        return max(local, self.shared.seconds_paused())

    def take_shared_slot(self) -> Callable[[], None]:
        """Block until a request slot of the shared limits store is held; what gives it back.

        Only with a shared store (``shared``); its failure is raised (StoreFailed).
        """
        assert self.shared is not None
        return self.shared.acquire_slot(self.effective_cap)

    def shared_token_wait(self) -> float:
        """0.0 once the shared store gave a rate token (or there is none to take)."""
        return self.shared.token_wait() if self.shared is not None else 0.0

    def next_request_delay(self) -> float:
        """Reserve a rate token; the seconds to wait before sending (0 without a rate)."""
        return self.request_rate.reserve() if self.request_rate is not None else 0.0

    def record(self, status: int, latency: float, sent_generation: int) -> None:
        """Count one answer and feed the adaptive controller."""
        with self._lock:
            stats = self.stats
            stats.requests += 1
            status_class = f"{status // 100}xx"
            stats.status_classes[status_class] = stats.status_classes.get(status_class, 0) + 1
            stats.latencies.append(latency)
            if status in OVERLOAD_STATUSES:
                stats.overloaded += 1
                stats.overloaded_at.append(self._clock())
        if self.adaptive is None:
            return
        if status in OVERLOAD_STATUSES:
            changed = self.adaptive.on_overload(sent_generation)
        else:
            changed = self.adaptive.on_success()
        if changed:
            self._cap_changed()

    def record_error(self) -> None:
        """A request that got no answer (connection refused, timeout)."""
        with self._lock:
            self.stats.requests += 1
            self.stats.errors += 1

    def record_retry(self) -> None:
        with self._lock:
            self.stats.retries += 1

    def pause_for(self, retry_after_seconds: float) -> None:
        """Hold the job's new requests for the server's Retry-After (at most the maximum)."""
        seconds = min(max(0.0, retry_after_seconds), MAX_RETRY_AFTER_SECONDS)
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
        if self.shared is not None:
            self.shared.pause(seconds)

    def _cap_changed(self) -> None:
        # One at a time, each reading the newest cap: a stale value never lands last.
        with self._cap_lock:
            with self._lock:
                self.stats.cap_changes.append((self._clock(), self.effective_cap))
            self.requests.resize(self.effective_cap)
            if self.shared is not None:
                self.shared.publish_cap(self.effective_cap)
            for listener in self._listeners:
                listener()

    def report_record(self, run_started: float) -> HttpJobRecord:
        """This job's figures for the reports; times in seconds from ``run_started``."""
        from ..reports.record import CapChange, HttpJobRecord

        with self._lock:
            stats = self.stats
            return HttpJobRecord(
                job=self.name,
                requests=stats.requests,
                status_classes=dict(stats.status_classes),
                overloaded=stats.overloaded,
                retries=stats.retries,
                errors=stats.errors,
                latency_p50=stats.percentile(0.50),
                latency_p95=stats.percentile(0.95),
                latency_p99=stats.percentile(0.99),
                effective_cap=self.effective_cap,
                min_effective_cap=self.min_effective_cap,
                cap_changes=[CapChange(at - run_started, cap) for at, cap in stats.cap_changes],
                overloaded_at=[at - run_started for at in stats.overloaded_at],
            )


class TrafficRegistry:
    """Every job's ``JobTraffic``, made on first use, under a lock (workers ask at once)."""

    def __init__(
        self,
        clock: Clock = clock.monotonic,
        shared_store: Callable[[], StoreGate | None] = lambda: None,
    ) -> None:
        self._clock = clock
        # The run's shared limits store once it is open (it opens when the pool starts).
        self._shared_store = shared_store
        self._lock = threading.Lock()
        self._jobs: dict[str, JobTraffic] = {}

    def state(self, job: Job) -> JobTraffic:
        """The traffic state of ``job``, made on first use."""
        with self._lock:
            traffic = self._jobs.get(job.name)
            if traffic is None:
                gate = self._shared_store()
                shared = None
                if gate is not None and gate.shares(job.name):
                    shared = SharedRequestLimits(gate, job)
                traffic = self._jobs[job.name] = JobTraffic(job, self._clock, shared)
            return traffic

    def states(self) -> list[JobTraffic]:
        with self._lock:
            return list(self._jobs.values())


class HeldSlots:
    """The request slots one test holds, so that those it leaves taken come back at its end.

    A response the test never closes (an unclosed ``client.stream(...)``) would
    otherwise keep its job's slot for the rest of the session. It also measures how
    long the test was blocked on its job's limits (``blocked_seconds``), which the
    lower bound does not count as work.
    """

    # Class-level defaults, so that a test that never takes a slot (most tests) pays
    # for no ``__init__`` and one lock serves all: it is taken only around a request.
    _lock: ClassVar[threading.Lock] = threading.Lock()
    _held: dict[Callable[[], None], str] | None = None  # release -> job name
    _ended = False
    # Whether this test ever took a slot: if not, its end has nothing to give back.
    taken = False
    # Own-limit waits (for the lower bound): this test's requests in progress (in the
    # exchange, or a response still holding its slot), how many of them wait on the
    # job's limits, since when all of them have, and the seconds of such waits so far.
    _requests = 0
    _waiting = 0
    _blocked_since: float | None = None
    _blocked_seconds = 0.0
    # Each answered request's time on the server, by job: slot uses for the lower bound.
    _served: dict[str, list[float]] | None = None

    def hold(self, release: Callable[[], None], job_name: str) -> None:
        """Note a slot taken for this test (not after the test has ended)."""
        with self._lock:
            if not self._ended:
                if self._held is None:
                    self._held = {}
                self._held[release] = job_name
                self.taken = True

    def drop(self, release: Callable[[], None]) -> None:
        """The slot came back the ordinary way."""
        with self._lock:
            if self._held is not None:
                self._held.pop(release, None)

    def request_started(self) -> None:
        """A request of this test is in progress (doing something until it waits)."""
        self._count(requests=1, waiting=0)

    def request_ended(self) -> None:
        self._count(requests=-1, waiting=0)

    def wait_started(self) -> None:
        """One of this test's requests in progress waits on its job's limits."""
        self._count(requests=0, waiting=1)

    def wait_ended(self) -> None:
        self._count(requests=0, waiting=-1)

    def _count(self, requests: int, waiting: int) -> None:
        # Blocked: at least one request waits and none of the test's requests is doing
        # anything else. Concurrent waits count once; a wait while another request is
        # served counts not at all (the test was not idle).
        with self._lock:
            now = clock.perf_counter()  # under the lock: intervals never run backwards
            self._requests += requests
            self._waiting += waiting
            blocked = self._waiting > 0 and self._waiting >= self._requests
            if blocked and self._blocked_since is None:
                self._blocked_since = now
            elif not blocked and self._blocked_since is not None:
                self._blocked_seconds += now - self._blocked_since
                self._blocked_since = None

    def served(self, job_name: str, seconds: float) -> None:
        """A request of this test held one of job ``job_name``'s slots while served."""
        with self._lock:
            if self._served is None:
                self._served = {}
            self._served.setdefault(job_name, []).append(seconds)

    def served_seconds(self) -> dict[str, list[float]]:
        """Each job's requests' times on the server (``served``), by job name."""
        with self._lock:
            return {name: list(seconds) for name, seconds in (self._served or {}).items()}

    def blocked_seconds(self) -> float:
        """Wall seconds this test was blocked on its own job's limits, up to now."""
        with self._lock:
            since = self._blocked_since
            if since is None:
                return self._blocked_seconds
            return self._blocked_seconds + clock.perf_counter() - since

    def give_back(self) -> list[str]:
        """The test has ended: give back every slot still held; their jobs' names."""
        with self._lock:
            self._ended = True
            held, self._held = self._held or {}, None
        for release in held:
            release()
        return sorted(held.values())


# The current test's slots: set around each test's protocol, read when a request
# takes a slot (asyncio tasks inherit it from the test that starts them).
CURRENT_HOLDER: ContextVar[HeldSlots | None] = ContextVar("dynpool_held_slots", default=None)


# The name this class had when it was ``jobstate.JobState`` (public in ``pytest_dynpool``).
JobState = JobTraffic
