"""Doctests on the pool run one at a time (other tests still overlap them).

pytest gives all doctests of a module one ``DocTestRunner``, which keeps the
running example's state on itself (its spoofed stdout, its counts), and
``DocTestRunner.run`` swaps ``linecache.getlines``, ``pdb.set_trace`` and
``sys.displayhook`` process-wide. Its ``sys.stdout`` swap is per item already
(see ``capture``); for the rest, pooled doctests take one lock around their run.
"""

from __future__ import annotations

import threading

from ..patching import Patches
from ..pytest_compat import DoctestItem

_one_doctest_at_a_time = threading.Lock()


def doctests_one_at_a_time(patches: Patches) -> None:
    """``DoctestItem.runtest`` under one lock, until ``patches`` are undone."""
    original = DoctestItem.__dict__["runtest"]

    def runtest_alone(item: DoctestItem) -> None:
        with _one_doctest_at_a_time:
            original(item)

    patches.setattr(DoctestItem, "runtest", runtest_alone)
