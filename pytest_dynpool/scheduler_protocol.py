"""The interface between the runtime and a scheduling strategy: pure, no pytest.

The runtime (``runtime.workers``, ``runtime.coordinator``) is typed against
``Scheduler``; ``scheduler.CappedScheduler`` is the one strategy, and a limits
store or an xdist worker plugs in through its seams (``slot_gate.SlotGate``,
``start_held``/``drop``) rather than by a scheduler of its own.
"""

from __future__ import annotations

from typing import Protocol


class Scheduler(Protocol):
    """What the runtime needs from a scheduling strategy; the runtime is typed against it.

    Items and jobs are indices into the plan. Every call is made under one lock
    held by the runtime, so an implementation need not be thread-safe.
    """

    def next_dispatch(self) -> int | None:
        """Claim the next item to run, or None when nothing may start now."""

    def start_held(self, item: int) -> None:
        """A held-back item (see ``CappedScheduler``) starts now, its slot already held."""

    def drop(self, item: int) -> None:
        """Undo the ``next_dispatch`` that returned ``item``: it runs elsewhere, never here."""

    def complete(self, item: int, seconds: float | None = None) -> None:
        """Give back the slot of a finished item; ``seconds``: how long it took, if measured."""

    def put_back(self, item: int, defer_seconds: float | None) -> None:
        """Undo the ``next_dispatch`` that returned ``item`` and ``defer`` its job.

        For a slot gate that refused the item's job a slot: the item goes back to
        the head of its job, as if it had never been dispatched.
        """

    def defer(self, job_index: int, seconds: float | None) -> None:
        """Park a job: none of its items starts for ``seconds`` (None: until ``resume``).

        Other jobs keep running, as for a job waiting for its next start token.
        """

    def resume(self, job_index: int) -> None:
        """End a job's ``defer`` now."""

    def set_cap(self, job_index: int, cap: int) -> None:
        """Change a job's effective cap (adaptive mode)."""

    def job_of(self, item: int) -> int:
        """The job index of ``item``."""

    def seconds_until_ready(self) -> float | None:
        """How long a free worker may sleep before a parked job can start; None: until woken."""

    def mean_cap(self, job_index: int) -> float:
        """A job's concurrency allowance averaged over the run so far (for the lower bound)."""

    @property
    def in_flight(self) -> int:
        """Items dispatched and not yet completed."""

    @property
    def pending(self) -> int:
        """Items not yet dispatched."""

    @property
    def peak_in_flight(self) -> int:
        """Most items in flight at once so far."""

    def job_peak(self, job_index: int) -> int:
        """Most items of one job in flight at once so far."""
