"""How an item used its job's limits, as a plugin measured it: waits and slot uses.

The lower bound (``bounds``) counts each item's time in flight as work. Time a
test spent blocked on limits its job's *other* tests held (an HTTP request slot,
a rate token, a server's Retry-After) depends on the schedule: the more of a
job's tests run at once, the longer each one waits. Counted as work, that wait
lifts the bound towards whatever the run took. A plugin that limits a job's
resources inside the test (the HTTP plugin) adds the seconds the test was
blocked; the core subtracts them before it bounds the run. The core knows
nothing of what was waited for.

A plugin may also say how long work inside the item held one of a job's cap
slots (an HTTP request holds one while it is served): a job's slot uses cannot
finish sooner than packed into its cap's slots, another bound on the run.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

OWN_WAIT_KEY = pytest.StashKey[float]()
SLOT_USES_KEY = pytest.StashKey[dict[str, list[float]]]()


def add_own_wait(item: pytest.Item, seconds: float) -> None:
    """Add ``seconds`` during which ``item`` was blocked on its own job's limits.

    Call it on the thread that runs the item, before its ``pytest_runtest_protocol``
    ends (an HTTP plugin's protocol wrapper, say). Count wall time during which
    the test could do nothing else, never the sum over its concurrent waits:
    what is subtracted must not include time the test worked.
    """
    if seconds > 0:
        item.stash[OWN_WAIT_KEY] = item.stash.get(OWN_WAIT_KEY, 0.0) + seconds


def own_wait(item: pytest.Item) -> float:
    """The seconds added by ``add_own_wait`` (0.0 when none)."""
    return item.stash.get(OWN_WAIT_KEY, 0.0)


def add_slot_uses(item: pytest.Item, job_name: str, seconds: Iterable[float]) -> None:
    """Note that work inside ``item`` held one of job ``job_name``'s cap slots for each
    of ``seconds`` (count only time the slot was surely needed: a request's time on the
    server, not its wait for the slot). Same thread and timing as ``add_own_wait``."""
    uses = [float(value) for value in seconds if value > 0]
    if uses:
        item.stash.setdefault(SLOT_USES_KEY, {}).setdefault(job_name, []).extend(uses)


def slot_uses(item: pytest.Item) -> dict[str, list[float]]:
    """The slot uses added by ``add_slot_uses``, by job name (empty when none)."""
    return item.stash.get(SLOT_USES_KEY, {})
