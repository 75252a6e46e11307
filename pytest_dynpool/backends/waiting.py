"""What the polling stores share: where a waiter last looked, and backoff with jitter."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

FIRST_POLL_SECONDS = 0.005
LONGEST_POLL_SECONDS = 0.25


class ReleaseMarks:
    """The release count of each job a thread saw when it was refused a slot.

    A release between the refusal and the wait would otherwise go unseen and
    the waiter would sleep its whole timeout: comparing against the count read
    *inside* the refusing transaction closes that gap. One mark per thread,
    because every thread (the coordinator, each HTTP request) waits on its own.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _marks(self) -> dict[str, int]:
        marks: dict[str, int] | None = getattr(self._local, "marks", None)
        if marks is None:
            marks = self._local.marks = {}
        return marks

    def refused(self, job: str, releases: int) -> None:
        self._marks()[job] = releases

    def changed(self, releases: dict[str, int]) -> bool:
        """True if any job's count moved since this thread's refusal (or it never was refused)."""
        marks = self._marks()
        return any(marks.get(job, -1) != count for job, count in releases.items())


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
