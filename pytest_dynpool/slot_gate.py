"""The slot gate: a door that an item's job must pass before the item starts.

The scheduler keeps each job under its cap inside the process; a gate extends
that limit beyond it (issue 12: a shared SQLite or Redis store). The runtime asks
the gate after the scheduler chose an item; a refusal puts the item back.
"""

from __future__ import annotations

from typing import Protocol


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


class LocalSlotGate:
    """The default gate: the process's own caps are the only limit, so it always grants."""

    def try_acquire(self, job: str, cap: int) -> float | None:
        return None

    def release(self, job: str) -> None:
        pass
