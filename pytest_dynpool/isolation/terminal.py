"""The run's terminal while the pool runs: out of reach of tests, and written one item at a time.

- File descriptors 1 and 2 are process-wide: a test that ``os.dup2``s a file onto
  them (click's ``CliRunner(capture="fd")``) and restores them while another test
  does the same can leave them pointing at a deleted temporary file, and the rest
  of the run would print nowhere. The terminal reporter writes to its own
  duplicate of its descriptor for the pool's duration, and afterwards fds 1 and 2
  are put back if a test left them elsewhere.
- ``--setup-show`` writes a line per fixture and per test from the thread that
  sets them up, in pieces, and reads the fixture's parameter from the shared
  ``FixtureDef``: on workers each line is written into a string, with the
  parameter of the item's own fixture instance, and the coordinator writes it
  in order with the item's reports.
"""

from __future__ import annotations

import contextvars
import io
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import pytest

from ..pytest_compat import (
    FixtureDef,
    TerminalWriter,
    replace_terminal_file,
    runner,
    setuponly,
)
from .item_context import HOOK_SINK, HookCall, active_context

_RECORDER: contextvars.ContextVar[TerminalWriter | None] = contextvars.ContextVar(
    "dynpool_terminal_recorder", default=None
)


def _file_identity(fd: int) -> tuple[int, int] | None:
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    return status.st_dev, status.st_ino


@contextmanager
def _descriptors_restored() -> Iterator[None]:
    """Put fds 1 and 2 back where they were if a test left them elsewhere."""
    saved: dict[int, tuple[int, tuple[int, int] | None]] = {}
    for fd in (1, 2):
        with suppress(OSError):
            saved[fd] = (os.dup(fd), _file_identity(fd))
    try:
        yield
    finally:
        for fd, (copy, identity) in saved.items():
            if _file_identity(fd) != identity:
                os.dup2(copy, fd)
            os.close(copy)


@contextmanager
def _reporter_on_its_own_descriptor(writer: TerminalWriter) -> Iterator[None]:
    original: Any = writer._file
    try:
        fd = original.fileno()
    except (AttributeError, OSError, ValueError):
        yield  # not a file (an in-process pytester run): nothing a test can swap
        return
    original.flush()
    own = io.TextIOWrapper(
        io.FileIO(os.dup(fd), "w"),
        encoding=getattr(original, "encoding", None) or "utf-8",
        errors=getattr(original, "errors", None) or "strict",
        write_through=True,
    )
    restore = replace_terminal_file(writer, own)
    try:
        yield
    finally:
        restore()
        own.close()


def _cached_param_per_instance() -> property:
    """``FixtureDef.cached_param`` of the fixture instance the current item uses."""
    params: dict[tuple[int, int], object] = {}

    def key(fixturedef: Any) -> tuple[int, int]:
        return id(fixturedef), id(fixturedef.cached_result)

    def get(fixturedef: Any) -> object:
        try:
            return params[key(fixturedef)]
        except KeyError:
            try:
                return vars(fixturedef)["cached_param"]
            except KeyError:
                raise AttributeError("cached_param") from None

    def set_(fixturedef: Any, value: object) -> None:
        params[key(fixturedef)] = value

    def delete(fixturedef: Any) -> None:
        if params.pop(key(fixturedef), None) is None:
            vars(fixturedef).pop("cached_param", None)

    return property(get, set_, delete)


def _recorded(original: Callable[..., None], writer: TerminalWriter) -> Callable[..., None]:
    """``original`` writing into a string that the coordinator writes with the item's reports."""

    def show(*args: Any, **kwargs: Any) -> None:
        sink = HOOK_SINK.get()
        if active_context() is None or sink is None:
            original(*args, **kwargs)
            return
        text = io.StringIO()
        recorder = TerminalWriter(text)
        recorder.hasmarkup = writer.hasmarkup
        token = _RECORDER.set(recorder)
        try:
            original(*args, **kwargs)
        finally:
            _RECORDER.reset(token)
        lines = text.getvalue()
        sink(HookCall("dynpool_setup_show", (), {}, False, lambda: writer.write(lines, flush=True)))

    return show


@contextmanager
def _setup_show_per_item(config: pytest.Config, writer: TerminalWriter) -> Iterator[None]:
    get_terminal_writer = config.get_terminal_writer
    saved_instance_attribute = vars(config).get("get_terminal_writer")
    saved_show_fixture = setuponly._show_fixture_action
    saved_show_item = runner.show_test_item
    saved_param = FixtureDef.__dict__.get("cached_param")
    config.get_terminal_writer = lambda: _RECORDER.get() or get_terminal_writer()  # type: ignore[method-assign]
    setuponly._show_fixture_action = _recorded(saved_show_fixture, writer)
    runner.show_test_item = _recorded(saved_show_item, writer)
    FixtureDef.cached_param = _cached_param_per_instance()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if saved_param is None:
            del FixtureDef.cached_param  # type: ignore[attr-defined]
        else:
            FixtureDef.cached_param = saved_param  # type: ignore[attr-defined]
        runner.show_test_item = saved_show_item
        setuponly._show_fixture_action = saved_show_fixture
        if saved_instance_attribute is None:
            del config.get_terminal_writer
        else:
            config.get_terminal_writer = saved_instance_attribute  # type: ignore[method-assign]


@contextmanager
def terminal_per_item(config: pytest.Config) -> Iterator[None]:
    """Everything above, for the pool's duration."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    with ExitStack() as stack:
        stack.enter_context(_descriptors_restored())
        if reporter is not None:
            writer = config.get_terminal_writer()
            stack.enter_context(_reporter_on_its_own_descriptor(writer))
            if config.option.setupshow:
                stack.enter_context(_setup_show_per_item(config, writer))
        yield
