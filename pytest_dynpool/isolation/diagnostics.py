"""Thread exceptions, unraisable exceptions and ``faulthandler_timeout``, per pooled item.

pytest collects exceptions raised in threads and in ``__del__`` into one deque
and turns whatever is in it into warnings at the end of each phase, so a
pooled item could pick up its neighbour's. Under the pool each item's context
has deques of its own: an error raised in a context goes to that context's
item, and errors of threads that belong to no running test stay in pytest's
deque, which pytest empties at the end of the session.

``faulthandler.dump_traceback_later`` has one timer per process; on workers a
timer per item takes its place, and the dump starts with the test's id.
"""

from __future__ import annotations

import collections
import datetime
import faulthandler
import functools
import os
import sys
import threading
from typing import Any

import pytest

from ..patching import Patches
from ..pytest_compat import thread_exceptions, unraisable_exceptions
from .item_context import ITEM_CONTEXT, active_context


class _DequePerItem(collections.deque):  # type: ignore[type-arg]
    """pytest's error deque, whose ends are the running item's own deque."""

    def __init__(self, process: collections.deque[Any], threads: bool) -> None:
        super().__init__()
        self.process = process
        self.threads = threads  # else unraisable exceptions

    def _current(self) -> collections.deque[Any]:
        context = ITEM_CONTEXT.get()
        if context is None or context.closed:
            context = active_context()
        if context is None:
            return self.process
        return context.thread_errors if self.threads else context.unraisables

    def append(self, value: Any) -> None:
        self._current().append(value)

    def pop(self) -> Any:  # type: ignore[override]
        return self._current().pop()


def _route_errors(
    patches: Patches,
    config: pytest.Config,
    key: pytest.StashKey[Any],
    hook_owner: Any,
    hook_name: str,
    threads: bool,
) -> None:
    process = config.stash.get(key, None)
    hook = getattr(hook_owner, hook_name)
    if process is None or not (isinstance(hook, functools.partial) and "append" in hook.keywords):
        return  # not pytest's hook any more (another plugin's): leave it alone
    routed = _DequePerItem(process, threads)
    config.stash[key] = routed
    patches.callback(config.stash.__setitem__, key, process)
    patches.setattr(hook_owner, hook_name, functools.partial(hook, append=routed.append))


_original_dump_later = faulthandler.dump_traceback_later
_original_cancel_dump_later = faulthandler.cancel_dump_traceback_later


def _dump_later(
    timeout: float, repeat: bool = False, file: Any = sys.stderr, exit: bool = False
) -> None:
    context = active_context()
    if context is None:
        _original_dump_later(timeout, repeat=repeat, file=file, exit=exit)
        return
    fd = file if isinstance(file, int) else file.fileno()
    header = f"Timeout ({datetime.timedelta(seconds=timeout)})! {context.item.nodeid}:\n"

    def dump() -> None:
        os.write(fd, header.encode())
        faulthandler.dump_traceback(file=fd, all_threads=True)

    timer = threading.Timer(timeout, dump)
    timer.daemon = True
    timer.name = "dynpool-faulthandler-timeout"
    context.faulthandler_timer = timer
    timer.start()


def _cancel_dump_later() -> None:
    context = active_context()
    if context is None:
        _original_cancel_dump_later()
    elif context.faulthandler_timer is not None:
        context.faulthandler_timer.cancel()
        context.faulthandler_timer = None


def diagnostics_per_item(patches: Patches, config: pytest.Config) -> None:
    """All of the above, until ``patches`` are undone."""
    _route_errors(patches, config, thread_exceptions, threading, "excepthook", threads=True)
    _route_errors(patches, config, unraisable_exceptions, sys, "unraisablehook", threads=False)
    patches.setattr(faulthandler, "dump_traceback_later", _dump_later)
    patches.setattr(faulthandler, "cancel_dump_traceback_later", _cancel_dump_later)
