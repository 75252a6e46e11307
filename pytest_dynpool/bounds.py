"""The lower bound of a pooled phase, and what set it: pure, no pytest.

No schedule of the measured durations could have finished sooner than the
largest of these terms:

- the pool: all work / N workers;
- a job's cap: its work / the concurrency it was allowed (the time-weighted
  effective cap for an adaptive job, bounded by N);
- a job's rate: n items started at r per second with a burst of b cannot all
  have started before (n - b) / r, and the last one then ran for at least the
  job's shortest item;
- a job's slots: work inside its tests that held one of its cap slots (an HTTP
  request while served) packs into ``cap`` slots at best: the uses' total / cap,
  and, since some slot served at least ceil(n / cap) of its n uses one after
  another, the sum of that many of the shortest;
- one item: the longest.

The session's teardown, done by the pooled phase's last item once every other
one has ended, follows whichever term is largest: it is taken out of that item's
work and added to the bound.

An item's work is its time in flight less the time it was blocked on its own
job's limits (``own_waits``: a request slot or rate token its job's other tests
held, a Retry-After pause). That wait depends on the schedule: counted as work,
it grows with how many of the job's tests ran at once, and the bound would
approach whatever the run took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class JobWork:
    """What one job did in the run, as far as the bound needs it."""

    name: str
    cap: float
    """Concurrency the job was allowed, averaged over the run, at most the pool's size."""
    items: Sequence[tuple[str, float]]
    """(node id, seconds in flight) of each item that ran."""
    per_second: float | None = None
    """Rate of test starts, if any."""
    burst: int = 1
    """Starts the rate allows at once (the job's cap)."""
    waited: Sequence[float] = ()
    """Seconds each item (in ``items``' order) was blocked on the job's own limits; () none."""
    slot_uses: Sequence[float] = ()
    """Seconds each use of one of the job's cap slots lasted (``own_waits.add_slot_uses``)."""
    slots: int = 1
    """How many such uses the job allows at once: its cap, not bounded by the pool."""

    def work(self) -> list[tuple[str, float]]:
        """(node id, seconds of work) of each item: its time in flight less its own waits."""
        if not self.waited:
            return list(self.items)
        return [
            (node_id, max(0.0, seconds - waited))
            for (node_id, seconds), waited in zip(self.items, self.waited, strict=True)
        ]


JOB_TERMS = ("cap", "rate", "slots")
"""The terms that are about one job (``Bound.subject`` names it)."""


@dataclass(frozen=True)
class Bound:
    """The lower bound in seconds and the term that set it.

    ``term`` is ``"pool"``, ``"cap"``, ``"rate"``, ``"slots"``, ``"item"`` or ``"nothing"``;
    ``subject`` names the job (cap, rate, slots) or the item (item) the term is about.
    """

    seconds: float
    term: str
    subject: str | None = None
    then: float = 0.0
    """Seconds of the session's teardown included in ``seconds``, after the term."""

    @property
    def reason(self) -> str:
        """The term in words, for the summary's pool line."""
        if round(self.then, 2) > 0:  # as the summary prints seconds
            return f"{self._term_reason()}, then {self.then:.2f}s of session teardown"
        return self._term_reason()

    def _term_reason(self) -> str:
        if self.term == "pool":
            return "the pool"
        if self.term in JOB_TERMS:
            return f"job {self.subject}'s {self.term}"
        if self.term == "item":
            return f"one item ({self.subject})"
        return "nothing ran"


NOTHING_RAN = Bound(0.0, "nothing")


def job_bound(job: JobWork) -> Bound | None:
    """The largest of one job's own terms (cap, rate, slots); None if none of its items ran."""
    items = job.work()
    if not items:
        return None
    work = sum(seconds for _, seconds in items)
    bound = Bound(work / max(job.cap, 1e-9), "cap", job.name)
    if job.per_second is not None:
        starts = max(0, len(items) - job.burst) / job.per_second
        shortest = min(seconds for _, seconds in items)
        bound = _larger(bound, Bound(starts + shortest, "rate", job.name))
    if job.slot_uses:
        bound = _larger(bound, Bound(_packed(job.slot_uses, job.slots), "slots", job.name))
    return bound


def _packed(uses: Sequence[float], slots: int) -> float:
    """The least time ``uses`` need in ``slots`` parallel slots.

    At most ``slots`` at once means the uses split into ``slots`` sequences (as
    intervals colour), so one slot served ceil(n / slots) of them in a row.
    """
    slots = max(slots, 1)
    in_a_row = -(-len(uses) // slots)
    return max(sum(uses) / slots, sum(sorted(uses)[:in_a_row]))


def lower_bound(
    workers: int, jobs: Sequence[JobWork], session_teardowns: Sequence[tuple[str, float]] = ()
) -> Bound:
    """The largest term, then the session's teardown; on a tie the pool, then a job's
    cap, its rate, its slots, one item.

    ``session_teardowns``: (node id, seconds) of the item whose teardown tore the
    session down, one per process; the shortest follows the term.
    """
    if session_teardowns:
        jobs = [_without_teardowns(job, session_teardowns) for job in jobs]
    best = _largest_term(workers, jobs)
    if session_teardowns and best is not NOTHING_RAN:
        then = min(seconds for _, seconds in session_teardowns)
        return Bound(best.seconds + then, best.term, best.subject, then)
    return best


def _without_teardowns(job: JobWork, teardowns: Sequence[tuple[str, float]]) -> JobWork:
    """``job`` with each session teardown taken out of the time of the item that did it."""
    items = list(job.items)
    for node_id, seconds in teardowns:
        for index in range(len(items) - 1, -1, -1):  # a node id run twice: the later one
            if items[index][0] == node_id:
                items[index] = (node_id, max(0.0, items[index][1] - seconds))
                break
    return replace(job, items=items)


def _largest_term(workers: int, jobs: Sequence[JobWork]) -> Bound:
    work = [pair for job in jobs for pair in job.work()]
    if not work:
        return NOTHING_RAN
    best = Bound(sum(seconds for _, seconds in work) / workers, "pool")
    for job in jobs:
        own = job_bound(job)
        if own is not None:
            best = _larger(best, own)
    node_id, longest = max(work, key=lambda pair: pair[1])
    return _larger(best, Bound(longest, "item", node_id))


def _larger(current: Bound, candidate: Bound) -> Bound:
    # Relative tolerance: a term equal up to float noise does not take the credit.
    return candidate if candidate.seconds > current.seconds * (1 + 1e-9) else current
