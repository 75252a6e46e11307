"""Which xdist worker runs which items, and with what share of each job's cap: pure.

Under ``pytest -n W`` every job's cap k is split into shares that sum to k, one
share per worker that runs the job (``min(k, W)`` workers), and the job's items
are split in proportion to the shares. Each worker enforces its own shares on
its own thread pool, so a job never has more than k items in flight across the
whole run, without any store shared between the processes. A job's rate is
split the same way.

Balance bound: each worker's part of a job needs the same number of rounds
(items / share) to drain, give or take one item. Items are handed out before
the run starts (xdist cannot move them later without breaking the caps), so
a worker that finishes early idles while another still has items of a job at
its share: the run takes at most about max over workers of that worker's own
lower bound, which ``benchmarks/xdist_mixed.py`` measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobItems:
    """One job as the controller sees it: its cap and the indices of its items."""

    cap: int
    items: Sequence[int]
    # The job of unmarked tests under --dynpool-unmarked=pool: its cap is the
    # pool of each process, so each worker gets the whole cap, not a share.
    cap_per_worker: bool = False


@dataclass
class WorkerShare:
    """What one xdist worker runs: item indices (collection order) and job caps."""

    items: list[int] = field(default_factory=list)
    caps: dict[int, int] = field(default_factory=dict)  # job index -> this worker's share


def split_cap(cap: int, workers: int) -> list[int]:
    """``cap`` as ``min(cap, workers)`` shares that differ by at most one, largest first."""
    count = min(cap, workers)
    base, extra = divmod(cap, count)
    return [base + (1 if n < extra else 0) for n in range(count)]


def _spread(items: Sequence[int], shares: Sequence[int]) -> list[list[int]]:
    """Items in proportion to ``shares``, interleaved (smooth weighted round-robin)."""
    parts: list[list[int]] = [[] for _ in shares]
    for item in items:
        target = min(range(len(shares)), key=lambda n: ((len(parts[n]) + 1) / shares[n], n))
        parts[target].append(item)
    return parts


def partition(
    workers: int, jobs: Sequence[JobItems], exclusive: Sequence[int]
) -> list[WorkerShare]:
    """Split the run among ``workers`` xdist workers.

    Jobs are placed largest first on the least loaded workers (load = items
    given so far), so small jobs of cap 1 spread over the workers. Exclusive
    (unmarked) items are split into contiguous runs, as xdist's ``load``
    scheduling keeps neighbours together for their module fixtures.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    shares = [WorkerShare() for _ in range(workers)]
    load = [0] * workers
    order = sorted(range(len(jobs)), key=lambda j: (-len(jobs[j].items), j))
    for job_index in order:
        job = jobs[job_index]
        if not job.items:
            continue
        if job.cap_per_worker:
            targets = list(range(workers))
            caps = [job.cap] * workers
        else:
            caps = split_cap(job.cap, min(workers, len(job.items)))
            targets = sorted(range(workers), key=lambda n: (load[n], n))[: len(caps)]
        for target, cap, part in zip(targets, caps, _spread(job.items, caps), strict=True):
            if not part:
                continue
            shares[target].items.extend(part)
            shares[target].caps[job_index] = cap
            load[target] += len(part)
    size, extra = divmod(len(exclusive), workers)
    start = 0
    for n in range(workers):
        end = start + size + (1 if n < extra else 0)
        shares[n].items.extend(exclusive[start:end])
        start = end
    for share in shares:
        share.items.sort()
    return shares
