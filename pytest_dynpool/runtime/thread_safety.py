"""Process-global pytest and pluggy state made safe for items running on worker threads.

Each piece is installed for the pooled phase only and undone afterwards:

- report hooks called on a worker are handed to the coordinator (pluggy's
  ``_inner_hookexec`` is its documented tracing seam);
- ``PYTEST_CURRENT_TEST`` is updated without the KeyError of two threads popping it,
  and a pooled test that reads it from ``os.environ`` sees its own (child
  processes inherit the process environment, which names the last test to set it);
- the assertion-rewrite helpers in ``_pytest.assertion.util`` become per thread,
  so each test keeps its own rich ``assert`` explanations;
- ``TempPathFactory`` (``tmp_path``, ``tmp_path_factory``) is serialised: it
  creates the run's base directory on first use and numbers directories from
  a counter, both unguarded, so two tests could make two bases or one name;
- ``ast.parse``, which pytest calls to show failing source, is serialised:
  CPython 3.11 raises "AST constructor recursion depth mismatch" when two
  threads parse at once;
- output capture, logging, warnings and thread errors become per item (see
  ``capture``, ``logs``, ``warning_state`` and ``diagnostics``);
- the recursion limit never drops below what a running thread needs, and
  threads get the main thread's stack size (``recursion_limit``);
- tests on one shared event loop take turns on it (``asyncio_loops``).
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import pytest

from ..isolation.asyncio_loops import shared_loops_one_test_at_a_time
from ..isolation.capture import OrphanOutput, capture_per_item
from ..isolation.diagnostics import diagnostics_per_item
from ..isolation.item_context import (
    HOOK_SINK,
    HookCall,
    active_context,
    threads_inherit_item_context,
)
from ..isolation.logs import logging_per_item
from ..isolation.recursion_limit import recursion_safe_threads
from ..isolation.warning_state import warnings_per_item
from ..pytest_compat import assertion_util, runner

ROUTED_HOOKS = frozenset(
    {
        "pytest_runtest_logstart",
        "pytest_runtest_logreport",
        "pytest_runtest_logfinish",
        "pytest_warning_recorded",
    }
)


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
        __tracebackhide__ = True  # a failure's report starts at pytest's frames, as in plain pytest
        sink = HOOK_SINK.get()
        if sink is None or name not in ROUTED_HOOKS:
            return self._original(name, methods, kwargs, firstresult)
        sink(HookCall(name, methods, kwargs, firstresult))  # pluggy passes a fresh list
        return None if firstresult else []

    def replay(self, call: HookCall) -> object:
        if call.replay is not None:
            return call.replay()
        return self._original(call.name, call.methods, call.kwargs, call.firstresult)


_original_update_current_test_var = runner._update_current_test_var


_CURRENT_TEST = "PYTEST_CURRENT_TEST"


def _update_current_test_var(item: pytest.Item, when: str | None) -> None:
    # pytest pops the variable unconditionally: two threads would raise KeyError.
    # No lock: a lock held across os.environ's C calls convoys the workers on the
    # GIL, and the process-wide value is only what child processes inherit.
    value = f"{item.nodeid} ({when})".replace("\x00", "(null)") if when else None
    context = active_context()
    if context is not None:
        context.current_test_var = value
    if value is not None:
        os.environ[_CURRENT_TEST] = value
    else:
        with suppress(KeyError):  # os.environ.pop is not atomic either
            del os.environ[_CURRENT_TEST]


class _EnvironWithOwnCurrentTest(os._Environ[str]):
    """``os.environ`` whose ``PYTEST_CURRENT_TEST`` is the reading test's own."""

    def __getitem__(self, key: str) -> str:
        if key == _CURRENT_TEST:
            context = active_context()
            if context is not None and context.current_test_var != "":
                if context.current_test_var is None:
                    raise KeyError(key)
                return context.current_test_var
        value: str = super().__getitem__(key)
        return value


@contextmanager
def _current_test_var_per_item() -> Iterator[None]:
    saved_class = os.environ.__class__
    os.environ.__class__ = _EnvironWithOwnCurrentTest
    try:
        yield
    finally:
        os.environ.__class__ = saved_class


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


_ast_lock = threading.RLock()
_original_ast_parse = ast.parse


def _serialised_ast_parse(*args: Any, **kwargs: Any) -> Any:
    with _ast_lock:
        return _original_ast_parse(*args, **kwargs)


_temp_path_lock = threading.RLock()


@contextmanager
def _serialised_temp_path_factory() -> Iterator[None]:
    """``getbasetemp`` and ``mktemp`` one thread at a time (``mktemp`` calls ``getbasetemp``)."""
    saved = {name: pytest.TempPathFactory.__dict__[name] for name in ("getbasetemp", "mktemp")}

    def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            with _temp_path_lock:
                return method(*args, **kwargs)

        return call

    for name, method in saved.items():
        setattr(pytest.TempPathFactory, name, serialised(method))
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(pytest.TempPathFactory, name, method)


class OutsideTests:
    """What threads that belong to no running pooled test wrote and logged."""

    def __init__(self, output: OrphanOutput, log: logging.Handler | None) -> None:
        self._output = output
        self._log = log

    def text(self) -> str:
        parts = [self._output.text()]
        stream = getattr(self._log, "stream", None)
        if stream is not None:
            parts.append(stream.getvalue())
        return "".join(part if part.endswith("\n") else part + "\n" for part in parts if part)


@contextmanager
def thread_safe_runtime(config: pytest.Config, router: HookRouter) -> Iterator[OutsideTests]:
    """Everything above, installed for the duration of the pooled phase."""
    root_logger = logging.getLogger()
    saved_handlers, saved_level = list(root_logger.handlers), root_logger.level
    router.install()
    ast.parse = _serialised_ast_parse
    runner._update_current_test_var = _update_current_test_var
    saved_assertion_class = assertion_util.__class__
    assertion_util.__class__ = _PerThreadAssertionHooks
    try:
        # The per-item states start from, and leave behind, the filters the
        # run had before the pooled phase.
        with ExitStack() as stack:
            stack.enter_context(warnings.catch_warnings())
            stack.enter_context(warnings_per_item())
            output = stack.enter_context(capture_per_item(config))
            log = stack.enter_context(logging_per_item(config))
            stack.enter_context(diagnostics_per_item(config))
            stack.enter_context(threads_inherit_item_context())
            stack.enter_context(recursion_safe_threads())
            stack.enter_context(_serialised_temp_path_factory())
            stack.enter_context(_current_test_var_per_item())
            stack.enter_context(shared_loops_one_test_at_a_time())
            yield OutsideTests(output, log)
    finally:
        assertion_util.__class__ = saved_assertion_class
        runner._update_current_test_var = _original_update_current_test_var
        ast.parse = _original_ast_parse
        router.uninstall()
        root_logger.handlers[:] = saved_handlers
        root_logger.setLevel(saved_level)


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
