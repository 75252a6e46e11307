"""One job's run-time state inside the scheduler: pure, no pytest."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .limits import TokenBucket

Entry = tuple[float, float, int, int, int]
"""A job on a heap: (key, second key, its first collected item, job index, generation)."""


@dataclass
class JobQueue:
    """Run-time state of one job inside the scheduler."""

    cap: int
    first_index: int
    waiting: deque[int] = field(default_factory=deque)
    """Its items not yet started (count and collection orders; by duration see ``Estimates``)."""
    left: int = 0
    """How many of its items have not started."""
    in_flight: int = 0
    peak: int = 0
    queued_in_heap: bool = False
    # Heap entries of another generation are stale (the job was popped or re-keyed since).
    heap_generation: int = 0
    starts: TokenBucket | None = None
    # Parked: out of start tokens, or deferred. A park entry with another
    # generation than the job's is stale and ignored.
    parked: bool = False
    park_generation: int = 0
    # The time integral of the concurrency the job was allowed, max(cap, in flight)
    # within the pool, since the run started; see ``CappedScheduler.mean_cap``.
    allowed_seconds: float = 0.0
    allowed_since: float = 0.0

    def runnable(self) -> bool:
        return self.left > 0 and self.in_flight < self.cap and not self.parked

    def allowed(self, workers: int) -> int:
        """The concurrency it is allowed now: its cap, or more while items started under a
        higher cap are in flight; at most the pool's ``workers``."""
        return min(max(self.cap, self.in_flight), workers)

    def integrate_allowed(self, now: float, workers: int) -> None:
        """Add the allowance since the last call to ``allowed_seconds``: call before it changes."""
        self.allowed_seconds += self.allowed(workers) * (now - self.allowed_since)
        self.allowed_since = now
