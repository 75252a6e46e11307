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
- output capture, logging, warnings and thread errors become per item (see
  ``capture``, ``logs``, ``warning_state`` and ``diagnostics``).
"""

from __future__ import annotations

import ast
import logging
import os
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import pytest

from ..isolation.capture import OrphanOutput, capture_per_item
from ..isolation.diagnostics import diagnostics_per_item
from ..isolation.doctests import doctests_one_at_a_time
from ..isolation.item_context import HOOK_SINK, HookCall, threads_inherit_item_context
from ..isolation.logs import logging_per_item
from ..isolation.terminal import terminal_per_item
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


_ast_lock = threading.RLock()
_original_ast_parse = ast.parse


def _serialised_ast_parse(*args: Any, **kwargs: Any) -> Any:
    with _ast_lock:
        return _original_ast_parse(*args, **kwargs)


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
            stack.enter_context(terminal_per_item(config))
            stack.enter_context(doctests_one_at_a_time())
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
