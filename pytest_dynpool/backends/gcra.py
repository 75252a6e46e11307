"""GCRA (generic cell rate algorithm): a rate limit kept as one timestamp per job.

The memory and SQLite backends call ``gcra_step`` in Python; the Redis backend
runs the same arithmetic inside a Lua script on Redis's clock. With emission
interval ``T = 1 / rate`` and tolerance ``tau = T * (burst - 1)``: at ``now``,
``tat = max(TAT, now)``; if ``tat - now > tau`` the caller waits
``tat - now - tau``, otherwise it passes and TAT becomes ``tat + T``. A run of
``N`` requests therefore spans ``(N - burst) / rate`` seconds, and no window of
one second holds more than ``rate + burst`` of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .. import clock

Clock = Callable[[], float]
# Float drift in tat - now must not turn a due token into a wait of a few nanoseconds.
EPSILON = 1e-9


@dataclass(frozen=True)
class GcraDecision:
    """``wait`` 0.0 and the new TAT to store, or the seconds to wait and TAT unchanged."""

    wait: float
    tat: float


@dataclass(frozen=True)
class Token:
    """A store's answer to a rate token request, on the store's own clock.

    ``wait`` 0.0: the token was taken, at ``at`` (seconds); else the seconds until
    one is there. The grant times are what GCRA bounds exactly: no window of one
    second holds more than rate + burst of them, whatever the network does later.
    """

    wait: float
    at: float


def check_rate(per_second: float, burst: int) -> None:
    if not per_second > 0 or burst < 1:
        raise ValueError("a rate needs per_second > 0 and burst >= 1")


def gcra_step(stored_tat: float | None, now: float, per_second: float, burst: int) -> GcraDecision:
    """One GCRA decision; ``stored_tat`` None means the job never sent (a full burst)."""
    interval = 1.0 / per_second
    tolerance = interval * (burst - 1)
    tat = now if stored_tat is None else max(stored_tat, now)
    ahead = tat - now
    if ahead > tolerance + EPSILON:
        return GcraDecision(ahead - tolerance, stored_tat if stored_tat is not None else tat)
    return GcraDecision(0.0, tat + interval)


class GcraLimiter:
    """One TAT per job on an injectable clock, under a lock: GCRA for one process."""

    def __init__(self, clock: Clock = clock.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tats: dict[str, float] = {}

    def take(self, job: str, per_second: float, burst: int) -> Token:
        """A token taken (wait 0.0), else the seconds until one is there."""
        check_rate(per_second, burst)
        with self._lock:
            now = self._clock()
            decision = gcra_step(self._tats.get(job), now, per_second, burst)
            if decision.wait == 0.0:
                self._tats[job] = decision.tat
            return Token(decision.wait, now)
