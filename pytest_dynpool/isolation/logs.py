"""Logging per pooled item: captured-log sections, ``caplog``, levels and live logs.

pytest's logging plugin keeps one ``caplog`` handler and one report handler for
the run, attaches them to the root logger around each phase, and lowers the
root logger's level for the phase. Under the pool, each item gets handlers of
its own that accept only the records logged from that item's context (its own
thread and the threads it started), and logger levels set from an item
(``caplog.set_level``, ``log_level``) hold in that item's context only; levels
set by a fixture wider than a function are process-wide, as they are in plain
pytest, so they hold for every test of that scope.

Live logs (``log_cli``) are written by the main thread: a record logged in a
pooled item becomes an event in that item's report stream, replayed in order
between its reports, under the section of the phase it was logged in.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

import pytest

from ..patching import Patches
from ..pytest_compat import LogCaptureHandler, LoggingPlugin, _LiveLoggingStreamHandler
from .item_context import (
    HOOK_SINK,
    IN_WIDER_FIXTURE,
    ITEM_CONTEXT,
    HookCall,
    ItemContext,
    active_context,
)


def _get_level(logger: logging.Logger) -> int:
    context = active_context()
    if context is not None and logger in context.logger_levels:
        return context.logger_levels[logger]
    level: int = logger.__dict__["level"]
    return level


def _set_level(logger: logging.Logger, level: int) -> None:
    context = active_context()
    if context is None or "level" not in logger.__dict__ or IN_WIDER_FIXTURE.get():
        logger.__dict__["level"] = level
    else:
        context.logger_levels[logger] = level


def _is_enabled_for(logger: logging.Logger, level: int) -> bool:
    """``Logger.isEnabledFor`` without its cache, which would mix the items' levels."""
    if logger.disabled or logger.manager.disable >= level:
        return False
    return level >= logger.getEffectiveLevel()


class _OwnedBy(logging.Filter):
    """Accept records logged from one item's context only."""

    def __init__(self, context: ItemContext | None) -> None:
        super().__init__()
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        if self.context is None:  # the orphan handler: threads of no running test
            return (
                active_context() is None
                and threading.current_thread() is not threading.main_thread()
            )
        return active_context() is self.context


_handlers_of_thread = threading.local()


def _own_copy(formatter: logging.Formatter | None) -> logging.Formatter | None:
    """pytest's coloured formatter swaps its format string per record: one per thread."""
    if formatter is None:
        return None
    duplicate = copy.copy(formatter)
    duplicate._style = copy.copy(formatter._style)
    return duplicate


def _item_handler(plugin: LoggingPlugin, name: str) -> LogCaptureHandler:
    """The item's own handler; each worker thread reuses its handlers from item to item."""
    shared: LogCaptureHandler = plugin.__dict__[name]
    context = active_context()
    if context is None:
        return shared
    handler = context.log_handlers.get(name)
    if handler is None:
        reusable: dict[str, tuple[LogCaptureHandler, _OwnedBy]] = getattr(
            _handlers_of_thread, "handlers", {}
        )
        _handlers_of_thread.handlers = reusable
        if name not in reusable:
            fresh = LogCaptureHandler()
            fresh.setFormatter(_own_copy(shared.formatter))
            owner = _OwnedBy(context)
            fresh.addFilter(owner)
            reusable[name] = fresh, owner
        handler, owner = reusable[name]
        owner.context = context
        handler.setLevel(shared.level)
        context.log_handlers[name] = handler
    assert isinstance(handler, LogCaptureHandler)
    return handler


class _PerItemHandler:
    """A handler attribute of pytest's logging plugin: the running item's own once made.

    Read several times per test phase: the item's handler, once it has one, is
    found here without a further call; anything else goes to ``_item_handler``.
    Assigning sets the shared handler, as pytest does at configure.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, plugin: LoggingPlugin | None, owner: type | None = None) -> Any:
        if plugin is None:
            return self
        context = ITEM_CONTEXT.get()
        if context is not None and not context.closed:
            handler = context.log_handlers.get(self._name)
            if handler is not None:
                return handler
        return _item_handler(plugin, self._name)

    def __set__(self, plugin: LoggingPlugin, handler: LogCaptureHandler) -> None:
        plugin.__dict__[self._name] = handler


class _ConcurrentLoggingPlugin(LoggingPlugin):
    caplog_handler = _PerItemHandler("caplog_handler")
    report_handler = _PerItemHandler("report_handler")


class _LiveLogRelay(logging.Filter):
    """Keeps pooled items' records off the terminal until the main thread replays them."""

    def __init__(self, handler: _LiveLoggingStreamHandler) -> None:
        super().__init__()
        self.handler = handler
        self.set_when = handler.set_when

    def filter(self, record: logging.LogRecord) -> bool:
        context = active_context()
        sink = HOOK_SINK.get()
        if context is None or sink is None:
            return True
        when = context.live_log_when
        sink(HookCall("dynpool_live_log", (), {}, False, lambda: self.emit(record, when)))
        return False

    def emit(self, record: logging.LogRecord, when: str | None) -> None:
        if self.handler._when != when:
            self.set_when(when)
        self.handler.handle(record)

    def set_when_per_item(self, when: str | None) -> None:
        context = active_context()
        if context is None:
            self.set_when(when)
        else:
            context.live_log_when = when


class _LoggerDict(dict):  # type: ignore[type-arg]
    """``Manager.loggerDict`` whose ``values()`` is a copy.

    pytest walks it on workers to attach handlers to non-propagating loggers,
    while other threads may be creating loggers ("dictionary changed size").
    """

    def values(self) -> list[Any]:  # type: ignore[override]
        return list(super().values())


def logging_per_item(patches: Patches, config: pytest.Config) -> LogCaptureHandler | None:
    """Install the above until ``patches`` are undone; the handler of threads outside any test."""
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    if not isinstance(plugin, LoggingPlugin):
        return None
    patches.callback(logging.Logger.manager._clear_cache)  # type: ignore[attr-defined]
    patches.setattr(logging.Logger, "level", property(_get_level, _set_level))
    patches.setattr(logging.Logger, "isEnabledFor", _is_enabled_for)
    patches.set_class(plugin, _ConcurrentLoggingPlugin)
    orphans = LogCaptureHandler()
    orphans.setFormatter(plugin.__dict__["report_handler"].formatter)
    orphans.setLevel(plugin.__dict__["report_handler"].level)
    orphans.addFilter(_OwnedBy(None))
    root = logging.getLogger()
    root.addHandler(orphans)
    patches.callback(root.removeHandler, orphans)
    live = plugin.log_cli_handler
    if isinstance(live, _LiveLoggingStreamHandler):
        relay = _LiveLogRelay(live)
        live.addFilter(relay)
        patches.callback(live.removeFilter, relay)
        patches.setattr(live, "set_when", relay.set_when_per_item)
    # pytest walks loggerDict on workers while other threads may be creating loggers;
    # the loggers made meanwhile stay when the original dict comes back.
    manager = logging.Logger.manager
    original = manager.loggerDict
    walkable = _LoggerDict(original)
    patches.setattr(manager, "loggerDict", walkable)
    patches.callback(original.update, walkable)
    return orphans
