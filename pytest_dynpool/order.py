"""The dispatch orders and the expected duration of each item: pure, no pytest.

The scheduler ranks runnable jobs by one of these orders; the duration order
needs each item's expected seconds, measured by an earlier run where known.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from enum import Enum


class Order(str, Enum):
    """Which runnable job a free worker serves first (``--dynpool-order``)."""

    DURATION = "duration"
    """Most remaining expected seconds per slot first; a job's longest items first."""
    COUNT = "count"
    """Most remaining items per cap first; a job's items in collection order."""
    COLLECTION = "collection"
    """The job whose next item was collected first: as close to pytest's order as caps allow."""


UNKNOWN_SECONDS = 1.0
"""What an item is expected to take when no item's duration is known: any constant makes
the duration order the count order (remaining items per slot)."""


def expected_seconds(job_of_item: Sequence[int], known: Sequence[float | None]) -> list[float]:
    """Each item's expected duration: measured, else its job's median, else the run's median.

    Items beyond ``known`` count as unknown. With nothing known at all every
    item gets ``UNKNOWN_SECONDS``.
    """
    known_of_job: dict[int, list[float]] = {}
    everything: list[float] = []
    for item, job in enumerate(job_of_item):
        seconds = known[item] if item < len(known) else None
        if seconds is not None:
            known_of_job.setdefault(job, []).append(seconds)
            everything.append(seconds)
    fallback = statistics.median(everything) if everything else UNKNOWN_SECONDS
    job_median = {job: statistics.median(values) for job, values in known_of_job.items()}
    return [
        seconds
        if (seconds := known[item] if item < len(known) else None) is not None
        else job_median.get(job, fallback)
        for item, job in enumerate(job_of_item)
    ]
