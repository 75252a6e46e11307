"""Process-global pytest and pluggy state made safe for items running on worker threads.

Each piece is installed for the pooled phase only and undone afterwards:

- report hooks called on a worker are handed to the coordinator (the calls of
  those four hooks only go through the router: ``pytest_compat.route_hook_calls``);
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
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

import pytest

from ..isolation.asyncio_loops import shared_loops_one_test_at_a_time
from ..isolation.capture import capture_per_item
from ..isolation.diagnostics import diagnostics_per_item
from ..isolation.doctests import doctests_one_at_a_time
from ..isolation.item_context import (
    HOOK_SINK,
    ITEM_CONTEXT,
    HookCall,
    active_context,
    threads_inherit_item_context,
)
from ..isolation.logs import logging_per_item
from ..isolation.pool_streams import OrphanOutput
from ..isolation.recursion_limit import recursion_safe_threads
from ..isolation.terminal import terminal_per_item
from ..isolation.warning_state import warnings_per_item
from ..patching import Patches
from ..pytest_compat import assertion_util, inner_hookexec_of, route_hook_calls, runner

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
        self._original: InnerHookExec = inner_hookexec_of(pluginmanager)

    def install(self, patches: Patches) -> None:
        route_hook_calls(patches, self._pluginmanager, ROUTED_HOOKS, self._route)

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


_CURRENT_TEST = "PYTEST_CURRENT_TEST"


def _update_current_test_var(item: pytest.Item, when: str | None) -> None:
    # pytest pops the variable unconditionally: two threads would raise KeyError.
    # No lock: a lock held across os.environ's C calls convoys the workers on the
    # GIL, and the process-wide value is only what child processes inherit.
    value = f"{item.nodeid} ({when})".replace("\x00", "(null)") if when else None
    context = ITEM_CONTEXT.get()
    if context is None or context.closed:
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


class _ThreadValue(threading.local):
    value: Any = None


class _PerThread:
    """A module attribute with one value per thread (None until the thread sets it)."""

    def __init__(self) -> None:
        self._local = _ThreadValue()

    def __get__(self, module: object, owner: type | None = None) -> Any:
        return self._local.value

    def __set__(self, module: object, value: Any) -> None:
        self._local.value = value


class _PerThreadAssertionHooks(types.ModuleType):
    """``_pytest.assertion.util`` with its three per-test globals kept per thread."""

    _reprcompare = _PerThread()
    _assertion_pass = _PerThread()
    _config = _PerThread()


_ast_lock = threading.RLock()
_original_ast_parse = ast.parse


def _serialised_ast_parse(*args: Any, **kwargs: Any) -> Any:
    with _ast_lock:
        return _original_ast_parse(*args, **kwargs)


_temp_path_lock = threading.RLock()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        with _temp_path_lock:
            return method(*args, **kwargs)

    return call


def _serialise_temp_path_factory(patches: Patches) -> None:
    """``getbasetemp`` and ``mktemp`` one thread at a time (``mktemp`` calls ``getbasetemp``)."""
    factory = pytest.TempPathFactory
    patches.setattr(factory, "getbasetemp", _serialised(factory.getbasetemp))
    patches.setattr(factory, "mktemp", _serialised(factory.mktemp))


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


def thread_safe_runtime(
    patches: Patches, config: pytest.Config, router: HookRouter
) -> OutsideTests:
    """Everything above, installed on ``patches`` (the pooled phase's): undone with them."""
    root_logger = logging.getLogger()
    saved_handlers, saved_level = list(root_logger.handlers), root_logger.level

    def restore_root_logger() -> None:
        root_logger.handlers[:] = saved_handlers
        root_logger.setLevel(saved_level)

    patches.callback(restore_root_logger)
    router.install(patches)
    patches.setattr(ast, "parse", _serialised_ast_parse)
    patches.setattr(runner, "_update_current_test_var", _update_current_test_var)
    patches.set_class(assertion_util, _PerThreadAssertionHooks)
    # The per-item states start from, and leave behind, the filters the
    # run had before the pooled phase.
    patches.enter_context(warnings.catch_warnings())
    warnings_per_item(patches)
    output = capture_per_item(patches, config)
    log = logging_per_item(patches, config)
    diagnostics_per_item(patches, config)
    threads_inherit_item_context(patches)
    recursion_safe_threads(patches)
    _serialise_temp_path_factory(patches)
    patches.set_class(os.environ, _EnvironWithOwnCurrentTest)
    shared_loops_one_test_at_a_time(patches)
    terminal_per_item(patches, config)
    doctests_one_at_a_time(patches)
    return OutsideTests(output, log)


def dots_only_progress(patches: Patches, config: pytest.Config) -> None:
    """Interleaved files would start a new line per report: show dots only, as xdist does."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is None:
        return
    if (
        reporter.currentfspath is not None
        and reporter.verbosity <= 0
        and reporter._show_progress_info
    ):
        reporter._write_progress_information_filling_space()  # close the exclusive items' line
    reporter.ensure_newline()
    reporter.showfspath  # noqa: B018 -- computes the value that the undo restores
    patches.setattr(reporter, "_showfspath", False)
