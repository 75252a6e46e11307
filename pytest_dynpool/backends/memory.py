"""The default limits store: this process only, under one lock; what a plain run pays for."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import clock
from . import BackendError, Lease, SharedJobState, default_holder, fenced_message
from .gcra import Clock, GcraLimiter, Token
from .waiting import ReleaseMarks


@dataclass
class _JobSlots:
    holders: set[str] = field(default_factory=set)
    peak: int = 0
    effective_cap: int | None = None
    paused_until: float = 0.0
    releases: int = 0


class MemoryBackend:
    """Slots, rates and adaptive state of one process; leases never expire.

    Nothing can die unseen inside one process, so there is nothing to renew:
    ``lease_seconds`` is infinite and the heartbeat does not start.
    """

    def __init__(
        self, namespace: str = "default", clock: Clock = clock.monotonic, holder: str | None = None
    ) -> None:
        self.url = "memory"
        self.namespace = namespace
        self.lease_seconds = math.inf
        self._clock = clock
        self._released = threading.Condition()
        self._jobs: dict[str, _JobSlots] = {}
        self._tokens = itertools.count()
        self._owner = holder or default_holder()
        self._fenced = False
        self._rates = GcraLimiter(clock)
        self._marks = ReleaseMarks()

    def _job(self, job: str) -> _JobSlots:
        slots = self._jobs.get(job)
        if slots is None:
            slots = self._jobs[job] = _JobSlots()
        return slots

    def acquire(self, job: str, cap: int) -> Lease | None:
        with self._released:
            if self._fenced:
                raise BackendError(f"memory: {fenced_message(self._owner)}")
            slots = self._job(job)
            if len(slots.holders) >= cap:
                self._marks.refused(job, slots.releases)
                return None
            token = str(next(self._tokens))
            slots.holders.add(token)
            slots.peak = max(slots.peak, len(slots.holders))
        return Lease(job, token, self._owner, math.inf)

    def renew(self, lease: Lease) -> bool:
        with self._released:
            return lease.token in self._job(lease.job).holders

    def release(self, lease: Lease) -> None:
        with self._released:
            slots = self._job(lease.job)
            if lease.token in slots.holders:
                slots.holders.remove(lease.token)
                slots.releases += 1
                self._released.notify_all()

    def wait_for_release(self, jobs: Sequence[str], timeout: float) -> bool:
        def released() -> bool:
            return self._marks.changed({job: self._job(job).releases for job in jobs})

        with self._released:
            return self._released.wait_for(released, max(0.0, timeout))

    def take_token(self, job: str, per_second: float, burst: int) -> Token:
        return self._rates.take(job, per_second, burst)

    def read_state(self, job: str) -> SharedJobState:
        with self._released:
            slots = self._job(job)
            pause = max(0.0, slots.paused_until - self._clock())
            return SharedJobState(slots.effective_cap, pause)

    def set_effective_cap(self, job: str, cap: int) -> None:
        with self._released:
            self._job(job).effective_cap = cap

    def pause(self, job: str, seconds: float) -> None:
        with self._released:
            slots = self._job(job)
            slots.paused_until = max(slots.paused_until, self._clock() + max(0.0, seconds))

    def in_flight(self, job: str) -> int:
        with self._released:
            return len(self._job(job).holders)

    def peak(self, job: str) -> int:
        with self._released:
            return self._job(job).peak

    def release_holder(self, holder: str, jobs: Sequence[str]) -> int:
        """Every lease here is this process's own: all of them, when ``holder`` is its name."""
        if holder != self._owner:
            return 0
        with self._released:
            self._fenced = True
            given_back = 0
            for slots in self._jobs.values():
                if slots.holders:
                    given_back += len(slots.holders)
                    slots.holders.clear()
                    slots.releases += 1
            self._released.notify_all()
            return given_back

    def close(self) -> None:
        """Nothing to drop: the store dies with the process."""
