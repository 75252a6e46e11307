"""The per-item state that replaces pytest's process-wide capture, log and warning state.

While the pool runs, each pooled item carries one ``ItemContext`` in a
``ContextVar``: where its output goes, its capture fixture, its logger levels and
log handlers, its warning filters, and the thread errors it caused. Threads that
a test starts inherit the context (``threading.Thread`` does not copy contexts
before Python 3.14), so what they print, log or raise is attributed to that
test; once the test is over its context is closed, and anything such a thread
still produces goes to the session-level section instead of a report.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

from ..patching import Patches


@dataclass(frozen=True)
class HookCall:
    """A hook call made on a worker, to be replayed on the coordinator.

    ``replay`` replaces the hook call for events that are not hook calls, such
    as a live-log record that the main thread must write in its place.
    """

    name: str
    methods: Sequence[Any]
    kwargs: Mapping[str, object]
    firstresult: bool
    replay: Callable[[], object] | None = None


HookSink = Callable[[HookCall], None]
HOOK_SINK: contextvars.ContextVar[HookSink | None] = contextvars.ContextVar(
    "dynpool_hook_sink", default=None
)


PROCESS_STREAM: Final = object()


@dataclass(eq=False)
class ItemContext:
    """Everything pytest keeps process-wide, kept for one pooled item instead."""

    item: pytest.Item
    # warnings.filters of this item, and its showwarning and _showwarnmsg_impl
    # (keyed by those names of the warnings module).
    warning_filters: list[Any]
    warning_hooks: dict[str, Any]
    # What ``sys.stdout``, ``sys.stderr`` and ``sys.stdin`` are for this item (PROCESS_STREAM: the
    # process's), the buffers of its current phase, and the session capture
    # streams it closed (see ``capture``).
    streams: list[Any] = field(default_factory=lambda: [PROCESS_STREAM] * 3)
    phase_output: list[Any] = field(default_factory=lambda: [None, None])
    closed_capture: set[int] = field(default_factory=set)
    capture_fixture: Any = None
    logger_levels: dict[logging.Logger, int] = field(default_factory=dict)
    log_handlers: dict[str, logging.Handler] = field(default_factory=dict)
    live_log_when: str | None = None
    thread_errors: collections.deque[Any] = field(default_factory=collections.deque)
    unraisables: collections.deque[Any] = field(default_factory=collections.deque)
    faulthandler_timer: threading.Timer | None = None
    closed: bool = False


@dataclass
class ProcessWarnings:
    """The warning state of code outside any pooled item (the main thread's)."""

    warning_filters: list[Any] = field(default_factory=list)
    warning_hooks: dict[str, Any] = field(default_factory=dict)


PROCESS_WARNINGS = ProcessWarnings()

ITEM_CONTEXT: contextvars.ContextVar[ItemContext | None] = contextvars.ContextVar(
    "dynpool_item_context", default=None
)


def active_context() -> ItemContext | None:
    """The running pooled item's context, or None outside one or after it ended."""
    context = ITEM_CONTEXT.get()
    if context is None or context.closed:
        return None
    return context


@contextmanager
def item_context(item: pytest.Item) -> Iterator[ItemContext]:
    """Give ``item`` its own context for as long as it is in flight on this thread.

    Its warning state starts as the pool's: what every item would have inherited
    from the session in plain pytest.
    """
    base = PROCESS_WARNINGS
    context = ItemContext(item, list(base.warning_filters), dict(base.warning_hooks))
    token = ITEM_CONTEXT.set(context)
    try:
        yield context
    finally:
        context.closed = True
        ITEM_CONTEXT.reset(token)


_original_thread_start = threading.Thread.start


def _start_in_callers_context(thread: threading.Thread) -> None:
    """``Thread.start`` that runs the thread in a copy of its starter's context.

    An exception that ends the thread is handed to ``threading.excepthook``
    inside that context too, so that it is reported with the test.
    """
    if ITEM_CONTEXT.get() is not None:
        run: Callable[[], None] = thread.run
        context = contextvars.copy_context()

        def run_and_report() -> None:
            try:
                run()
            except BaseException:
                exc_type, exc_value, exc_traceback = sys.exc_info()
                args = threading.ExceptHookArgs([exc_type, exc_value, exc_traceback, thread])
                threading.excepthook(args)

        thread.run = lambda: context.run(run_and_report)  # type: ignore[method-assign]
    _original_thread_start(thread)


def threads_inherit_item_context(patches: Patches) -> None:
    """Threads that a pooled test starts belong to that test."""
    patches.setattr(threading.Thread, "start", _start_in_callers_context)
