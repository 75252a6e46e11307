"""Job slots for one process from a shared store: leases kept alive, failures remembered.

The runtime asks ``try_acquire`` before an item starts and ``release`` when it
ends (the ``SlotGate`` of slot_gate.py); the HTTP transports take a slot per
request with ``acquire_waiting`` and give it back with ``release_lease``. A
refusal never blocks the runtime: it defers the job for the seconds returned
(a backoff with jitter) and tries another one; a watcher thread calls
``on_release`` as soon as the store sees a release of a refused job, so the
runtime can resume it early. The first failure of the store is kept in
``failure``: from then on nothing is granted (fail closed) and the runtime
stops dispatching.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from .. import clock
from . import BackendError, Lease, LimitsBackend, SharedJobState, Taken, Token
from .heartbeat import LeaseKeeper
from .waiting import poll_delays

_T = TypeVar("_T")
# A deferred job is retried at least this often even if no wake-up comes (a poll).
LONGEST_DEFER_SECONDS = 1.0


@dataclass(frozen=True)
class Refused:
    """No slot now: wait ``retry_in`` seconds for a rate token, or None for a release."""

    retry_in: float | None


class StoreFailed(Exception):
    """The store failed: nothing more may start. The message says what happened."""


class StoreGate:
    """One process's door to a ``LimitsBackend``."""

    def __init__(
        self,
        backend: LimitsBackend,
        on_release: Callable[[list[str]], None] | None = None,
        start_rates: Mapping[str, tuple[float, int]] | None = None,
        local_jobs: Iterable[str] = (),
    ) -> None:
        self.backend = backend
        # Jobs of this process alone (the pool-sized ``unmarked`` job): no lease, no store.
        self.local_jobs = frozenset(local_jobs)
        self._on_release = on_release
        self._on_failure: Callable[[str], None] | None = None
        # Per job: (starts per second, burst) shared by every process.
        self._start_rates = dict(start_rates or {})
        self._granted: dict[str, list[Lease]] = {}
        # When each refused job was first refused, and every wait from there to a grant:
        # the summary shows the longest against the mean (does any process starve?).
        self._refused_since: dict[str, float] = {}
        self.waits: list[float] = []
        self._backoff: dict[str, Iterator[float]] = {}
        self._lock = threading.Condition()
        self._held: dict[str, set[str]] = {}
        self.local_peaks: dict[str, int] = {}
        self.failure: str | None = None
        self.lost: list[str] = []
        self._refused: set[str] = set()
        self._closed = False
        self._keeper = LeaseKeeper(backend, self._lease_lost)
        self._watcher: threading.Thread | None = None

    def share_start_rates(self, start_rates: Mapping[str, tuple[float, int]]) -> None:
        """Per job: (starts per second, burst) taken from the store with each slot."""
        self._start_rates = dict(start_rates)

    def listen(
        self,
        on_release: Callable[[list[str]], None],
        on_failure: Callable[[str], None],
    ) -> None:
        """``on_release(jobs)``: refused jobs may find a slot now; ``on_failure(message)``:
        the store failed, stop starting items. Both are called from other threads."""
        self._on_release = on_release
        self._on_failure = on_failure

    def _fail(self, message: str) -> StoreFailed:
        with self._lock:
            first = self.failure is None
            if first:
                self.failure = message
            self._lock.notify_all()
        if first and self._on_failure is not None:
            self._on_failure(message)
        return StoreFailed(self.failure or message)

    def _lease_lost(self, lease: Lease, reason: str, store_failed: bool) -> None:
        with self._lock:
            self._held.get(lease.job, set()).discard(lease.token)
        self.lost.append(f"{lease.job}: {reason}")
        if store_failed:
            self._fail(f"{self.backend.url}: {reason}")

    def try_acquire(self, job: str, cap: int) -> float | None:
        """The runtime's door (``SlotGate``): None when a slot of ``job`` is now held.

        Else the seconds to defer the job: until its start token, or a backoff
        with jitter (``on_release`` may resume it sooner). Never raises: once
        the store has failed every job is deferred (fail closed) and
        ``on_failure`` has been told. A local job is always granted: the
        process's own scheduler is its cap.
        """
        answer = self.try_acquire_with(job, lambda: self.backend.acquire(job, cap))
        assert not isinstance(answer, Taken)
        return answer

    def try_acquire_with(
        self, job: str, acquire: Callable[[], Lease | Taken | None]
    ) -> float | Taken | None:
        """``try_acquire`` with the store call given: a claim of an item with its slot
        (``backends.claims``) may answer TAKEN, passed on as is. A local job's items are
        never shared between processes: granted without the store, unclaimed."""
        if job in self.local_jobs:
            return None
        per_second, burst = self._start_rates.get(job) or (None, 1)
        try:
            outcome = self.lease(job, 0, per_second, burst, acquire)
        except StoreFailed:
            return LONGEST_DEFER_SECONDS
        if isinstance(outcome, Taken):
            return outcome
        with self._lock:
            if isinstance(outcome, Lease):
                self.granted(outcome)
                return None
            self._refused_since.setdefault(job, clock.monotonic())
            if outcome.retry_in is not None:
                return outcome.retry_in
        self._watch(job)
        with self._lock:
            delays = self._backoff.setdefault(job, poll_delays())
            return next(delays)

    def adopt(self, lease: Lease) -> None:
        """A lease the backend granted outside ``lease`` (a stolen item's): the runtime's."""
        self.hold(lease)
        with self._lock:
            self.granted(lease)

    def fail(self, message: str) -> None:
        """The store failed outside this gate's calls: nothing more is granted."""
        self._fail(message)

    def granted(self, lease: Lease) -> None:
        """Count ``lease`` as the runtime's, given back by ``release``. Under ``_lock``."""
        job = lease.job
        self._granted.setdefault(job, []).append(lease)
        self._backoff.pop(job, None)
        since = self._refused_since.pop(job, None)
        if since is not None:
            self.waits.append(clock.monotonic() - since)

    def release(self, job: str) -> None:
        """The runtime's door: give back one slot that ``try_acquire`` granted for ``job``."""
        if job in self.local_jobs:
            return
        with self._lock:
            lease = self._granted[job].pop()
        self.release_lease(lease)

    def shares(self, job: str) -> bool:
        """Whether ``job``'s limits live in the store (not a local job)."""
        return job not in self.local_jobs

    @overload
    def lease(
        self, job: str, cap: int, per_second: float | None = None, burst: int = 1
    ) -> Lease | Refused: ...

    @overload
    def lease(
        self,
        job: str,
        cap: int,
        per_second: float | None,
        burst: int,
        acquire: Callable[[], Lease | Taken | None],
    ) -> Lease | Refused | Taken: ...

    def lease(
        self,
        job: str,
        cap: int,
        per_second: float | None = None,
        burst: int = 1,
        acquire: Callable[[], Lease | Taken | None] | None = None,
    ) -> Lease | Refused | Taken:
        """A lease of ``job`` and, with a rate, a token; or how to wait. Never blocks.

        ``acquire``: the store call that takes the slot (default: ``acquire(job, cap)``).
        StoreFailed once the store has failed (now or before).
        """
        if self.failure is not None:
            raise StoreFailed(self.failure)
        try:
            lease = self.backend.acquire(job, cap) if acquire is None else acquire()
            if lease is None:
                return Refused(None)
            if isinstance(lease, Taken):
                return lease
            if per_second is not None:
                wait = self.backend.take_token(job, per_second, burst).wait
                if wait > 0.0:
                    self.backend.release(lease)  # a slot is not held while its token is due
                    return Refused(wait)
        except BackendError as error:
            raise self._fail(str(error)) from error
        self.hold(lease)
        return lease

    def hold(self, lease: Lease) -> None:
        """Keep ``lease`` alive (heartbeat) and count it in this process's peak."""
        job = lease.job
        with self._lock:
            held = self._held.setdefault(job, set())
            held.add(lease.token)
            self.local_peaks[job] = max(self.local_peaks.get(job, 0), len(held))
        self._keeper.hold(lease)

    def release_lease(self, lease: Lease) -> None:
        """Give the slot back at once; a store failure here is remembered, never raised."""
        self._keeper.drop(lease)
        with self._lock:
            self._held[lease.job].discard(lease.token)
        try:
            self.backend.release(lease)
        except BackendError as error:
            self._fail(str(error))  # the lease expires in the store by itself

    def acquire_waiting(self, job: str, cap: int, timeout: float | None) -> Lease:
        """Block this thread until it holds a slot of ``job`` (a request's slot).

        StoreFailed when the store fails or no slot came within ``timeout`` seconds
        (None: no limit but the store's health).
        """
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            outcome = self.lease(job, cap)
            if isinstance(outcome, Lease):
                return outcome
            left = LONGEST_DEFER_SECONDS if deadline is None else deadline - clock.monotonic()
            if left <= 0:
                raise StoreFailed(f"no slot of {job!r} came within {timeout:g} s")
            self._ask(self.backend.wait_for_release, [job], min(left, LONGEST_DEFER_SECONDS))

    def _ask(self, operation: Callable[..., _T], *args: Any) -> _T:
        """One call to the store; its failure is remembered and raised as StoreFailed."""
        if self.failure is not None:
            raise StoreFailed(self.failure)
        try:
            return operation(*args)
        except BackendError as error:
            raise self._fail(str(error)) from error

    def take_token(self, job: str, per_second: float, burst: int) -> Token:
        """The store's GCRA (``LimitsBackend.take_token``); StoreFailed when it fails."""
        return self._ask(self.backend.take_token, job, per_second, burst)

    def read_state(self, job: str) -> SharedJobState:
        return self._ask(self.backend.read_state, job)

    def set_effective_cap(self, job: str, cap: int) -> None:
        self._ask(self.backend.set_effective_cap, job, cap)

    def pause(self, job: str, seconds: float) -> None:
        self._ask(self.backend.pause, job, seconds)

    def _watch(self, job: str) -> None:
        """Tell ``on_release`` when ``job`` may find a slot again."""
        if self._on_release is None:
            return
        with self._lock:
            self._refused.add(job)
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch_releases, name="dynpool-store-watcher", daemon=True
                )
                self._watcher.start()
            self._lock.notify_all()

    def _watch_releases(self) -> None:
        assert self._on_release is not None
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._refused or self._closed or self.failure)
                if self._closed or self.failure is not None:
                    return
                jobs = sorted(self._refused)
            try:
                self.backend.wait_for_release(jobs, LONGEST_DEFER_SECONDS)
            except BackendError as error:
                self._fail(str(error))
            with self._lock:
                self._refused.difference_update(jobs)
            # Woken or not: let them try again (a poll at worst), and let the
            # caller see a failure at once.
            self._on_release(jobs)

    def store_peaks(self, jobs: Iterable[str]) -> dict[str, int | None]:
        """The peak the store saw per job (None where it cannot say)."""
        peaks: dict[str, int | None] = {}
        for job in jobs:
            try:
                peaks[job] = self.backend.peak(job)
            except BackendError:
                peaks[job] = None
        return peaks

    def close(self) -> None:
        """Stop renewing, give back every lease still held, drop the connection."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._keeper.close()
        for lease in self._keeper.held():
            self.release_lease(lease)
        watcher = self._watcher
        if watcher is not None:
            watcher.join(timeout=LONGEST_DEFER_SECONDS + 10.0)
        self.backend.close()
