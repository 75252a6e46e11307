"""Doctests on the pool run one at a time (other tests still overlap them).

pytest gives all doctests of a module one ``DocTestRunner``, which keeps the
running example's state on itself (its spoofed stdout, its counts), and
``DocTestRunner.run`` swaps ``linecache.getlines``, ``pdb.set_trace`` and
``sys.displayhook`` process-wide. Its ``sys.stdout`` swap is per item already
(see ``capture``); for the rest, pooled doctests take one lock around their run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..pytest_compat import DoctestItem

_one_doctest_at_a_time = threading.Lock()


@contextmanager
def doctests_one_at_a_time() -> Iterator[None]:
    """``DoctestItem.runtest`` under one lock, for the pool's duration."""
    original = DoctestItem.__dict__["runtest"]

    def runtest_alone(item: DoctestItem) -> None:
        with _one_doctest_at_a_time:
            original(item)

    DoctestItem.runtest = runtest_alone  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        DoctestItem.runtest = original  # type: ignore[method-assign]
