"""Is the pooled phase CPU-bound? Then fewer workers take items, and the GIL changes hands less.

The GIL lets one thread run Python at a time. While the items in flight keep
about one core busy, every extra runnable thread only makes the GIL change hands
(on two cores each hand-over wakes a thread on the other core, and no Python runs
meanwhile: a profile of 2,000 trivial tests put 5 % of the pooled phase there).
While items wait (I/O, sleeps, gates), every worker should run. The gauge
compares the process's CPU time with the wall clock over short windows: at about
one core busy, the number of items that may start is halved (down to one) and the
GIL switch interval is lengthened; below that, or well above it (code that runs
without the GIL on several cores), every worker may start items and the interval
is the one the phase started with. Nothing in flight is ever stopped, and a
waiting worker looks again after a window, so a test that waits for another test
waits at most about a window longer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from .. import clock

Clock = Callable[[], float]

WINDOW_SECONDS = 0.02
"""How often the gauge looks: short, so that an I/O-bound suite barely notices it."""
SATURATED = (0.85, 1.3)
"""CPU seconds per wall second that mean: about one core busy, and not more."""
CPU_BOUND_SWITCH_INTERVAL = 0.05
"""The GIL switch interval while CPU-bound (CPython's default is 0.005)."""


class CpuBoundGauge:
    """How many items may be in flight, from the process's recent share of a core.

    Not thread-safe: the runtime calls it under its claim lock. ``on_change`` is
    told when the phase turns CPU-bound (True) and when it stops being (False).
    """

    def __init__(
        self,
        workers: int,
        *,
        window: float | None = None,
        cpu_clock: Clock = clock.process_time,
        wall_clock: Clock = clock.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.workers = workers
        self.window = WINDOW_SECONDS if window is None else window
        self._saturated = SATURATED
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._on_change = on_change
        self._limit = workers
        self._since_wall = wall_clock()
        self._since_cpu = cpu_clock()
        self.cpu_bound = False
        self.lowest = workers
        """The lowest limit so far."""

    @property
    def limit(self) -> int:
        """The limit decided at the last window, without looking again."""
        return self._limit

    def look(self) -> int:
        """The limit now: decided again once a window has passed since the last decision."""
        now = self._wall_clock()
        elapsed = now - self._since_wall
        if elapsed < self.window:
            return self._limit
        cpu = self._cpu_clock()
        share = (cpu - self._since_cpu) / elapsed
        self._since_wall, self._since_cpu = now, cpu
        low, high = self._saturated
        cpu_bound = low <= share <= high
        if cpu_bound:
            self._limit = max(1, self._limit // 2)
            self.lowest = min(self.lowest, self._limit)
        else:
            self._limit = self.workers
        if cpu_bound != self.cpu_bound:
            self.cpu_bound = cpu_bound
            if self._on_change is not None:
                self._on_change(cpu_bound)
        return self._limit


class SwitchInterval:
    """Lengthens ``sys.setswitchinterval`` while CPU-bound; ``restore`` is its exact undo."""

    def __init__(self, cpu_bound_seconds: float | None = None) -> None:
        self._found = sys.getswitchinterval()
        if cpu_bound_seconds is None:
            cpu_bound_seconds = CPU_BOUND_SWITCH_INTERVAL
        self._longer = max(self._found, cpu_bound_seconds)
        self._ours: float | None = None

    def follow(self, cpu_bound: bool) -> None:
        """The gauge's ``on_change``."""
        seconds = self._longer if cpu_bound else self._found
        sys.setswitchinterval(seconds)
        self._ours = sys.getswitchinterval()

    def restore(self) -> None:
        """Put back the interval found, unless someone else has set another since."""
        if self._ours is not None and sys.getswitchinterval() == self._ours:
            sys.setswitchinterval(self._found)
        self._ours = None
