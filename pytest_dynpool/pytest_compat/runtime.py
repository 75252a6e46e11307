"""Process-global pytest and pluggy state made safe for items running on worker threads.

Each piece is installed for the pooled phase only and undone afterwards:

- report hooks called on a worker are handed to the coordinator (pluggy's
  ``_inner_hookexec`` is its documented tracing seam);
- ``PYTEST_CURRENT_TEST`` is updated without the KeyError of two threads popping it;
- the assertion-rewrite helpers in ``_pytest.assertion.util`` become per thread,
  so each test keeps its own rich ``assert`` explanations;
- ``ast.parse``, which pytest calls to show failing source, is serialised:
  CPython 3.11 raises "AST constructor recursion depth mismatch" when two
  threads parse at once;
- warning filters and root-logger handlers, swapped by every item, are restored;
- per-phase output capture becomes per item at the ``sys`` level (a routing
  stream), instead of one global capture suspended and resumed by every item.
"""

from __future__ import annotations

import ast
import io
import logging
import os
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TextIO

import pytest
from _pytest import runner
from _pytest.assertion import util as assertion_util

ROUTED_HOOKS = frozenset(
    {
        "pytest_runtest_logstart",
        "pytest_runtest_logreport",
        "pytest_runtest_logfinish",
        "pytest_warning_recorded",
    }
)


@dataclass(frozen=True)
class HookCall:
    """A hook call made on a worker, to be replayed on the coordinator."""

    name: str
    methods: Sequence[Any]
    kwargs: Mapping[str, object]
    firstresult: bool


HookSink = Callable[[HookCall], None]
HOOK_SINK: ContextVar[HookSink | None] = ContextVar("dynpool_hook_sink", default=None)

InnerHookExec = Callable[[str, Sequence[Any], Mapping[str, object], bool], object]


class HookRouter:
    """Sends report hooks from worker threads to whoever replays them."""

    def __init__(self, pluginmanager: pytest.PytestPluginManager) -> None:
        self._pluginmanager = pluginmanager
        self._original: InnerHookExec = pluginmanager._inner_hookexec

    def install(self) -> None:
        self._pluginmanager._inner_hookexec = self._route  # type: ignore[assignment]

    def uninstall(self) -> None:
        if self._pluginmanager._inner_hookexec == self._route:
            self._pluginmanager._inner_hookexec = self._original  # type: ignore[assignment]

    def _route(
        self, name: str, methods: Sequence[Any], kwargs: Mapping[str, object], firstresult: bool
    ) -> object:
        sink = HOOK_SINK.get()
        if sink is None or name not in ROUTED_HOOKS:
            return self._original(name, methods, kwargs, firstresult)
        sink(HookCall(name, methods, kwargs, firstresult))  # pluggy passes a fresh list
        return None if firstresult else []

    def replay(self, call: HookCall) -> object:
        return self._original(call.name, call.methods, call.kwargs, call.firstresult)


_original_update_current_test_var = runner._update_current_test_var


def _update_current_test_var(item: pytest.Item, when: str | None) -> None:
    # pytest pops the variable unconditionally: two threads would raise KeyError.
    # No lock: a lock held across os.environ's C calls convoys the workers on the
    # GIL, and with several tests in flight any one of them is "current" anyway.
    if when:
        os.environ["PYTEST_CURRENT_TEST"] = f"{item.nodeid} ({when})".replace("\x00", "(null)")
    else:
        with suppress(KeyError):  # os.environ.pop is not atomic either
            del os.environ["PYTEST_CURRENT_TEST"]


def _per_thread(name: str) -> property:
    def get(module: _PerThreadAssertionHooks) -> Any:
        return getattr(module._dynpool_local, name, None)

    def set_(module: _PerThreadAssertionHooks, value: Any) -> None:
        setattr(module._dynpool_local, name, value)

    return property(get, set_)


class _PerThreadAssertionHooks(types.ModuleType):
    """``_pytest.assertion.util`` with its three per-test globals kept per thread."""

    _dynpool_local = threading.local()
    _reprcompare = _per_thread("_reprcompare")
    _assertion_pass = _per_thread("_assertion_pass")
    _config = _per_thread("_config")


class _ItemOutput:
    """One phase's stdout and stderr of one item; buffers made on the first write."""

    __slots__ = ("streams",)

    def __init__(self) -> None:
        self.streams: list[io.StringIO | None] = [None, None]

    def write(self, index: int, text: str) -> int:
        stream = self.streams[index]
        if stream is None:
            stream = self.streams[index] = io.StringIO()
        return stream.write(text)

    def text(self, index: int) -> str:
        stream = self.streams[index]
        return "" if stream is None else stream.getvalue()


CAPTURE_BUFFERS: ContextVar[_ItemOutput | None] = ContextVar(
    "dynpool_capture_buffers", default=None
)


class RoutingStream:
    """Stands in for ``sys.stdout``/``sys.stderr``: writes go to the item in flight."""

    def __init__(self, target: TextIO, index: int) -> None:
        self._target = target
        self._index = index

    def write(self, text: str) -> int:
        output = CAPTURE_BUFFERS.get()
        if output is None:
            return self._target.write(text)
        return output.write(self._index, text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if CAPTURE_BUFFERS.get() is None:
            self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


@contextmanager
def _capture_item_phase(when: str, item: pytest.Item) -> Iterator[None]:
    output = _ItemOutput()
    token = CAPTURE_BUFFERS.set(output)
    try:
        yield
    finally:
        CAPTURE_BUFFERS.reset(token)
        item.add_report_section(when, "stdout", output.text(0))
        item.add_report_section(when, "stderr", output.text(1))


_ast_lock = threading.RLock()
_original_ast_parse = ast.parse


def _serialised_ast_parse(*args: Any, **kwargs: Any) -> Any:
    with _ast_lock:
        return _original_ast_parse(*args, **kwargs)


@contextmanager
def thread_safe_runtime(config: pytest.Config, router: HookRouter) -> Iterator[None]:
    """Everything above, installed for the duration of the pooled phase."""
    router.install()
    ast.parse = _serialised_ast_parse
    runner._update_current_test_var = _update_current_test_var
    saved_assertion_class = assertion_util.__class__
    assertion_util.__class__ = _PerThreadAssertionHooks
    capman = config.pluginmanager.getplugin("capturemanager")
    capture_on = capman is not None and capman.is_globally_capturing()
    saved_streams = sys.stdout, sys.stderr
    if capture_on:
        original_item_capture = capman.item_capture

        @contextmanager
        def item_capture(when: str, item: pytest.Item) -> Iterator[None]:
            if HOOK_SINK.get() is None:  # not a worker: the item runs alone
                with original_item_capture(when, item):
                    yield
            else:
                with _capture_item_phase(when, item):
                    yield

        capman.item_capture = item_capture
        # The global capture stays suspended while the pool runs (the routing
        # streams replace it); --setup-show and others suspend and resume it
        # around their output, which from a worker would redirect every thread.
        original_resume, original_suspend = (
            capman.resume_global_capture,
            capman.suspend_global_capture,
        )

        def resume_global_capture() -> None:
            if HOOK_SINK.get() is None:
                original_resume()

        def suspend_global_capture(in_: bool = False) -> None:
            if HOOK_SINK.get() is None:
                original_suspend(in_)

        capman.resume_global_capture = resume_global_capture
        capman.suspend_global_capture = suspend_global_capture
        sys.stdout = RoutingStream(sys.stdout, 0)
        sys.stderr = RoutingStream(sys.stderr, 1)
    root_logger = logging.getLogger()
    saved_handlers, saved_level = list(root_logger.handlers), root_logger.level
    try:
        # Per-item warning capture swaps process-wide filters from several
        # threads; whatever order they restore in, the run continues with the
        # filters it had before the pooled phase.
        with warnings.catch_warnings():
            yield
    finally:
        root_logger.handlers[:] = saved_handlers
        root_logger.setLevel(saved_level)
        if capture_on:
            sys.stdout, sys.stderr = saved_streams
            del capman.item_capture
            del capman.resume_global_capture
            del capman.suspend_global_capture
        assertion_util.__class__ = saved_assertion_class
        runner._update_current_test_var = _original_update_current_test_var
        ast.parse = _original_ast_parse
        router.uninstall()


@contextmanager
def dots_only_progress(config: pytest.Config) -> Iterator[None]:
    """Interleaved files would start a new line per report: show dots only, as xdist does."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is None:
        yield
        return
    if (
        reporter.currentfspath is not None
        and reporter.verbosity <= 0
        and reporter._show_progress_info
    ):
        reporter._write_progress_information_filling_space()  # close the exclusive items' line
    reporter.ensure_newline()
    previous = reporter.showfspath
    reporter.showfspath = False
    try:
        yield
    finally:
        reporter.showfspath = previous
