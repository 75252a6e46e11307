"""A job's request limits kept in the run's shared limits store (SQLite, Redis).

With a shared store every process's requests of a job count together: a slot
per request in flight (a lease, apart from the job's test slots), a GCRA rate
token per request, the server's Retry-After pause and the adaptive effective
cap. The process's own limiters still apply first; this only adds the store's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..backends import request_slots
from ..model import Job

if TYPE_CHECKING:
    from ..backends.gate import StoreGate

# A request waits at most this long for a shared slot before it fails: the store's
# other holders are tests like this one, so a wait this long means they are stuck.
SLOT_WAIT_SECONDS = 300.0


class SharedRequestLimits:
    """The store's side of one job's request limits; every call may raise StoreFailed."""

    def __init__(self, gate: StoreGate, job: Job) -> None:
        self._gate = gate
        self.job = job
        self._slots = request_slots(job.name)

    def seconds_paused(self) -> float:
        """How long every process must still wait out a server's Retry-After for this job."""
        return self._gate.read_state(self.job.name).pause_seconds

    def pause(self, seconds: float) -> None:
        self._gate.pause(self.job.name, seconds)

    def publish_cap(self, cap: int) -> None:
        """This process's adaptive controller moved the cap: every process follows."""
        self._gate.set_effective_cap(self.job.name, cap)

    def acquire_slot(self, local_cap: int) -> Callable[[], None]:
        """Block until a request slot is held; returns what gives it back.

        The cap is this process's effective cap, or for an adaptive job the
        smaller of it and the one another process published.
        """
        cap = local_cap
        if self.job.adaptive:  # only adaptive jobs publish a cap: others need not ask
            shared_cap = self._gate.read_state(self.job.name).effective_cap
            cap = min(local_cap, shared_cap) if shared_cap is not None else local_cap
        lease = self._gate.acquire_waiting(self._slots, cap, SLOT_WAIT_SECONDS)
        return lambda: self._gate.release_lease(lease)

    def token_wait(self) -> float:
        """0.0 when a rate token was taken, else the seconds until one is there."""
        rate = self.job.rate
        if rate is None:
            return 0.0
        return self._gate.take_token(self._slots, rate.per_second, self.job.cap).wait
