"""Rate and concurrency limits of a job: pure, clock-injectable, safe from threads and tasks.

- ``TokenBucket`` gates test starts and requests at a rate, with a burst.
- ``ConcurrencyLimiter`` bounds requests in flight, from threads and asyncio
  tasks alike, and can be resized while in use (adaptive mode).
- ``AdaptiveCap`` is the AIMD controller that decides the effective cap.

Nothing here imports pytest; the clock is a parameter so tests can drive it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Re-exported: rates were parsed here before they moved to the pure model.
from . import clock
from .model import Rate as Rate
from .model import parse_rate as parse_rate

Clock = Callable[[], float]

_EPSILON = 1e-9


class TokenBucket:
    """``per_second`` tokens a second, at most ``burst`` saved up; starts full.

    ``take`` never waits: it says how long until a token would be there, so a
    scheduler can try another job meanwhile. ``reserve`` always takes one, going
    into debt, and says how long the caller must wait before using it: waiting
    callers are then served in the order they came, each at its own time.
    """

    def __init__(self, per_second: float, burst: int, clock: Clock = clock.monotonic) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("a token bucket needs per_second > 0 and burst >= 1")
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.per_second)
        self._updated = now
        return now

    def take(self) -> float:
        """Take a token and return 0.0, or return the seconds until one is there."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0 - _EPSILON:  # float refill may fall short by a hair
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.per_second

    def reserve(self) -> float:
        """Take a token, borrowing ahead; return the seconds to wait before using it."""
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            if self._tokens >= 0.0:
                return 0.0
            return -self._tokens / self.per_second


@dataclass
class _Waiter:
    # Tells the waiter it holds a slot now; False if it can no longer hear it.
    wake: Callable[[], bool]
    granted: bool = False


class ConcurrencyLimiter:
    """At most ``capacity`` holders at once; first come, first served; resizable.

    A release hands the slot straight to the longest waiter, so a newcomer
    never overtakes. Threads wait on an Event, asyncio tasks on a future of
    their own loop, so a task never blocks its loop. Shrinking the capacity
    takes no slot away: it holds back new holders until enough have left.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._lock = threading.Lock()
        self._capacity = capacity
        self._in_use = 0
        self._waiters: deque[_Waiter] = deque()
        self.peak = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _take_locked(self) -> bool:
        if self._waiters or self._in_use >= self._capacity:
            return False
        self._in_use += 1
        self.peak = max(self.peak, self._in_use)
        return True

    def _grant_locked(self) -> list[Callable[[], bool]]:
        wakes = []
        while self._waiters and self._in_use < self._capacity:
            waiter = self._waiters.popleft()
            waiter.granted = True
            self._in_use += 1
            self.peak = max(self.peak, self._in_use)
            wakes.append(waiter.wake)
        return wakes

    def _enter(self, wake: Callable[[], bool]) -> _Waiter | None:
        """Take a slot now (None), or queue a waiter that ``wake`` will tell."""
        with self._lock:
            if self._take_locked():
                return None
            waiter = _Waiter(wake)
            self._waiters.append(waiter)
            return waiter

    def _leave(self, waiter: _Waiter) -> bool:
        """Stop waiting; True if the slot was granted just before (the caller holds it)."""
        with self._lock:
            if not waiter.granted:
                self._waiters.remove(waiter)
            return waiter.granted

    def acquire(self, timeout: float | None = None) -> bool:
        """Block this thread until it holds a slot; False if ``timeout`` seconds passed first."""
        event = threading.Event()

        def wake() -> bool:
            event.set()
            return True

        waiter = self._enter(wake)
        return waiter is None or event.wait(timeout) or self._leave(waiter)

    async def acquire_async(self, timeout: float | None = None) -> bool:
        """Wait, without blocking the event loop, until this task holds a slot.

        False if ``timeout`` seconds passed first.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> bool:
            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:  # its event loop is closed: the task is gone
                return False
            return True

        waiter = self._enter(wake)
        if waiter is None:
            return True
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return self._leave(waiter)
        except BaseException:
            if self._leave(waiter):
                self.release()  # the slot came as we were cancelled: pass it on
            raise
        return True

    def release(self) -> None:
        """Give a slot back; the longest waiter gets it."""
        with self._lock:
            if self._in_use <= 0:
                raise RuntimeError("release() without a matching acquire()")
            self._in_use -= 1
            wakes = self._grant_locked()
        self._wake(wakes)

    def resize(self, capacity: int) -> None:
        """Change the capacity; waiters are let in at once if it grew."""
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        with self._lock:
            self._capacity = capacity
            wakes = self._grant_locked()
        self._wake(wakes)

    def _wake(self, wakes: list[Callable[[], bool]]) -> None:
        for wake in wakes:
            if not wake():
                self.release()  # nobody took that slot: pass it on


# After this many successes in a row the effective cap grows by one.
SUCCESS_RUN = 5


@dataclass
class AdaptiveCap:
    """AIMD: halve on overload (at least 1), +1 after ``SUCCESS_RUN`` successes in a row.

    Overloads answered to requests sent before the last decrease do not halve
    again: a burst of 429s from one overloaded moment counts once, as TCP
    halves its window once per loss event. Callers pass the ``generation``
    they read when they sent the request.
    """

    maximum: int
    cap: int = 0
    minimum_seen: int = 0
    generation: int = 0
    decreases: int = 0
    success_run: int = SUCCESS_RUN
    _successes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.maximum < 1:
            raise ValueError("maximum must be >= 1")
        self.cap = self.cap or self.maximum
        self.minimum_seen = self.cap

    def on_overload(self, sent_generation: int) -> bool:
        """A 429/503; True when the cap went down."""
        with self._lock:
            self._successes = 0
            if sent_generation != self.generation or self.cap == 1:
                return False
            self.cap = max(1, self.cap // 2)
            self.minimum_seen = min(self.minimum_seen, self.cap)
            self.generation += 1
            self.decreases += 1
            return True

    def on_success(self) -> bool:
        """Any other answer; True when the cap went up."""
        with self._lock:
            self._successes += 1
            if self._successes < self.success_run or self.cap >= self.maximum:
                return False
            self._successes = 0
            self.cap += 1
            return True
