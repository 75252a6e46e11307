"""The per-item state that replaces pytest's process-wide capture, log and warning state.

While the pool runs, each pooled item carries one ``ItemContext`` in a
``ContextVar``: where its output goes, its capture fixture, its logger levels and
log handlers, its warning filters, and the thread errors it caused. Threads that
a test starts inherit the context (``threading.Thread`` does not copy contexts
before Python 3.14), so what they print, log or raise is attributed to that
test; once the test is over its context is closed, and anything such a thread
still produces goes to the session-level section instead of a report.

Threads that belong to no test -- started by a fixture wider than a function, or
before the pool -- follow the test in flight, as under plain pytest, where all
capture is process-wide: while exactly one pooled test is in flight, what they
print, log or raise is that test's; while several are, it goes to the
session-level section ("output of threads outside any test"), since no single
test owns it.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pytest

from ..patching import Patches
from .recursion_limit import settle_recursion_limit


@dataclass(frozen=True, slots=True)  # several per test: no __dict__ for the GC to scan
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


@dataclass(eq=False, slots=True)  # one per test
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
    # PYTEST_CURRENT_TEST as this item sees it: "" until pytest sets it, None once deleted.
    current_test_var: str | None = ""
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
# True while a fixture wider than a function is set up or torn down: what it
# does belongs to its scope, not to the item that happened to need it first.
IN_WIDER_FIXTURE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dynpool_in_wider_fixture", default=False
)
# Whether a thread of no test follows the test in flight; None: unless it is
# the main thread. The pool's own threads are started with False.
_FOLLOWS_TEST_IN_FLIGHT: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "dynpool_follows_test_in_flight", default=None
)
# Insertion-ordered: the test that has been in flight longest comes first.
_in_flight: dict[ItemContext, int] = {}


def _sole_test_in_flight() -> ItemContext | None:
    follows = _FOLLOWS_TEST_IN_FLIGHT.get()
    if follows is None:
        follows = threading.current_thread() is not threading.main_thread()
    if not follows or len(_in_flight) != 1:
        return None
    try:
        return next(iter(_in_flight))
    except (StopIteration, RuntimeError):  # it ended meanwhile
        return None


def threads_of_tests_in_flight() -> list[int]:
    """Thread ids of the pooled tests in flight, the longest-running first."""
    try:
        return list(_in_flight.values())
    except RuntimeError:  # changed size while copied: one more try
        return list(_in_flight.copy().values())


def active_context() -> ItemContext | None:
    """The running pooled item's context, or None outside one or after it ended.

    A thread of no test gets the one test in flight, if there is exactly one.
    The per-phase paths (capture, logs, warnings, thread errors) read
    ``ITEM_CONTEXT`` first and call this only when it is None or closed: the
    same answer, without a call in the common case of an item's own thread.
    """
    context = ITEM_CONTEXT.get()
    if context is None:
        return _sole_test_in_flight()
    if context.closed:
        return None
    return context


def open_item_context(item: pytest.Item) -> tuple[ItemContext, contextvars.Token[Any]]:
    """Give ``item`` its own context on this thread until ``close_item_context``.

    Its warning state starts as the pool's: what every item would have inherited
    from the session in plain pytest. (Two functions, not a context manager: the
    worker's ``RunningItem`` opens and closes it once per test.)
    """
    base = PROCESS_WARNINGS
    streams, phase_output = [PROCESS_STREAM] * 3, [None, None]  # the defaults, without a call
    context = ItemContext(
        item, list(base.warning_filters), dict(base.warning_hooks), streams, phase_output
    )
    token = ITEM_CONTEXT.set(context)
    _in_flight[context] = threading.get_ident()
    return context, token


def close_item_context(context: ItemContext, token: contextvars.Token[Any]) -> None:
    """The item is over: what its threads still do goes to no report of it."""
    context.closed = True
    _in_flight.pop(context, None)
    ITEM_CONTEXT.reset(token)
    settle_recursion_limit()


_original_thread_start = threading.Thread.start


def _start_in_callers_context(thread: threading.Thread) -> None:
    """``Thread.start`` that runs the thread in a copy of its starter's context.

    An exception that ends the thread is handed to ``threading.excepthook``
    inside that context too, so that it is reported with the test. A thread
    started by a fixture wider than a function belongs to no test: it follows
    the test in flight. The main thread's (the pool's own) follow none.
    """
    run: Callable[[], None] = thread.run
    if ITEM_CONTEXT.get() is None:
        if threading.current_thread() is threading.main_thread():
            context = contextvars.copy_context()
            context.run(_FOLLOWS_TEST_IN_FLIGHT.set, False)
            thread.run = lambda: context.run(run)  # type: ignore[method-assign]
    elif IN_WIDER_FIXTURE.get():
        context = contextvars.Context()
        context.run(_FOLLOWS_TEST_IN_FLIGHT.set, True)
        thread.run = lambda: context.run(run)  # type: ignore[method-assign]
    else:
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
