"""Which xdist worker runs which items: pure.

Every worker gets its items before it starts (it runs several at once on its
own pool), and every job's cap is held across the workers by the run's limits
store, so each worker may run any job's items with the whole cap: the split
only has to balance the workers. Each job's items are dealt one at a time to
the least loaded worker (load = items given so far), largest job first, so
every worker gets about the same number of items of every job and in all.

The split is each worker's preference: with the run's SQLite store a worker
whose own items have all started takes another's unstarted ones (``xdist_balance``);
without stealing, a worker whose items turn out shorter finishes early and idles
while another still runs its own. ``benchmarks/xdist_mixed.py`` measures that idle
fraction with uneven durations, both ways (``BENCHMARKS.md``).
"""

from __future__ import annotations

from collections.abc import Sequence


def partition(
    workers: int, jobs: Sequence[Sequence[int]], exclusive: Sequence[int]
) -> list[list[int]]:
    """Split the run among ``workers``: each one's item indices, in collection order.

    ``jobs`` holds each job's item indices. Exclusive (unmarked) items are split
    into contiguous runs, as xdist's ``load`` scheduling keeps neighbours
    together for their module fixtures.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    parts: list[list[int]] = [[] for _ in range(workers)]
    load = [0] * workers
    for job in sorted(jobs, key=len, reverse=True):
        for item in job:
            target = min(range(workers), key=lambda n: (load[n], n))
            parts[target].append(item)
            load[target] += 1
    size, extra = divmod(len(exclusive), workers)
    start = 0
    for n in range(workers):
        end = start + size + (1 if n < extra else 0)
        parts[n].extend(exclusive[start:end])
        start = end
    for part in parts:
        part.sort()
    return parts
