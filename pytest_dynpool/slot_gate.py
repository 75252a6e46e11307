"""The slot gate: a door that an item's job must pass before the item starts.

The scheduler keeps each job under its cap inside the process; a gate extends
that limit beyond it (issue 12: a shared SQLite or Redis store). The runtime asks
the gate after the scheduler chose an item; a refusal puts the item back.
"""

from __future__ import annotations

from typing import Protocol

from .backends import Taken


class SlotGate(Protocol):
    """Asked for a slot of an item's job before the item starts; told when it ends.

    The seam for limits shared beyond this process (issue 12: SQLite, Redis):
    the scheduler already keeps each job under its cap inside the process.
    Called under the runtime's claim lock: an answer must come quickly.
    """

    def try_acquire(self, job: str, cap: int) -> float | None:
        """None: a slot of ``job`` is now held. Else refused: seconds until worth asking again."""

    def release(self, job: str) -> None:
        """Give back a slot that ``try_acquire`` granted."""


class ItemClaims(Protocol):
    """Pool items shared with other processes, each run by exactly one (xdist balance).

    Under ``-n`` every worker may run any pooled item: it prefers its own share,
    and takes another worker's unstarted items once nothing of its own can start.
    Called under the runtime's claim lock, like ``SlotGate``, whose ``release``
    gives back the slots taken here.
    """

    @property
    def held_back(self) -> frozenset[int]:
        """Pool items of the other shares: not queued here, run only once stolen."""

    def try_claim(self, item: int, job: str, cap: int) -> float | Taken | None:
        """Claim ``item`` with a slot of ``job`` (one store step). None: both held;
        TAKEN: another process claimed it, so it is dropped here; else seconds to defer."""

    def steal(self) -> int | None:
        """Another process's unstarted item, claimed with its job's slot; None: none now."""

    @property
    def exhausted(self) -> bool:
        """Nothing is left to steal: every other share's items are claimed."""

    def retry_in(self) -> float:
        """How long a worker with nothing to run waits before it tries ``steal`` again."""


class LocalSlotGate:
    """The default gate: the process's own caps are the only limit, so it always grants."""

    def try_acquire(self, job: str, cap: int) -> float | None:
        return None

    def release(self, job: str) -> None:
        pass
