"""What the polling stores share: where a waiter last looked, and backoff with jitter."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

FIRST_POLL_SECONDS = 0.005
LONGEST_POLL_SECONDS = 0.25


class ReleaseMarks:
    """The release count of each job when this process was last refused a slot of it.

    A release between the refusal and the wait would otherwise go unseen and
    the waiter would sleep its whole timeout: comparing against the count read
    *inside* the refusing transaction closes that gap. The marks are the
    process's, not a thread's: the store watcher waits for the workers that
    were refused. A later refusal moves the mark on, so an earlier waiter may
    miss that release and sleep out its (always bounded) timeout instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marks: dict[str, int] = {}

    def refused(self, job: str, releases: int) -> None:
        with self._lock:
            self._marks[job] = releases

    def changed(self, releases: dict[str, int]) -> bool:
        """True if any job's count moved since the last refusal (or it never was refused)."""
        with self._lock:
            return any(self._marks.get(job, -1) != count for job, count in releases.items())


def poll_delays(rng: random.Random | None = None) -> Iterator[float]:
    """Sleeps between polls: doubling from 5 ms to 250 ms, each 50-100 % of its step.

    The jitter keeps several processes that were refused together from
    polling together ever after.
    """
    draw = (rng or random.Random()).uniform
    step = FIRST_POLL_SECONDS
    while True:
        yield step * draw(0.5, 1.0)
        step = min(step * 2, LONGEST_POLL_SECONDS)
