"""One pooled test at a time on an event loop that several tests share (pytest-asyncio).

pytest-asyncio runs every async test and fixture through an ``asyncio.Runner``
whose loop lives as long as the test's ``loop_scope``: a function-scoped loop is
the test's own, but a module-, class-, package- or session-scoped loop is shared
by all the tests of that scope. A loop runs one ``run_until_complete`` at a time,
so two overlapping tests on one shared loop fail with "This event loop is
already running". While the pool runs, ``Runner.run`` takes a lock per runner:
tests on a shared loop take turns on it (each holds its worker while it waits),
tests on loops of their own overlap freely.

(pytest-asyncio's other process-wide swap, of ``FixtureDef.func`` during an
async fixture's setup, is made per thread by ``runtime.fixture_store``.)
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from ..patching import Patches

_locks: weakref.WeakKeyDictionary[object, threading.RLock] = weakref.WeakKeyDictionary()
_locks_lock = threading.Lock()


def _lock_of(runner: object) -> threading.RLock:
    with _locks_lock:
        lock = _locks.get(runner)
        if lock is None:
            lock = _locks[runner] = threading.RLock()
        return lock


def _runner_classes() -> list[type]:
    classes: list[type] = []
    if sys.version_info >= (3, 11):
        from asyncio import Runner

        classes.append(Runner)
    try:  # what pytest-asyncio uses on Python 3.10
        from backports.asyncio.runner import Runner as BackportedRunner  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:  # pragma: no cover - Python 3.10
        classes.append(BackportedRunner)
    return classes


def _one_at_a_time(run: Callable[..., Any]) -> Callable[..., Any]:
    def run_alone(self: object, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> Any:
        __tracebackhide__ = True
        with _lock_of(self):
            return run(self, coro, **kwargs)

    return run_alone


def shared_loops_one_test_at_a_time(patches: Patches) -> None:
    """Serialise ``Runner.run`` per runner on ``patches`` (the pooled phase's)."""
    for cls in _runner_classes():
        patches.setattr(cls, "run", _one_at_a_time(cls.__dict__["run"]))
