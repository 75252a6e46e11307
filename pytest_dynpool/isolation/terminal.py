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
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest

from ..patching import Patches
from ..pytest_compat import (
    FixtureDef,
    TerminalWriter,
    replace_terminal_file,
    runner,
    setuponly,
    terminal_file,
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


def _restore_descriptors_afterwards(patches: Patches) -> None:
    """Put fds 1 and 2 back where they were if a test left them elsewhere."""
    saved: dict[int, tuple[int, tuple[int, int] | None]] = {}
    for fd in (1, 2):
        with suppress(OSError):
            saved[fd] = (os.dup(fd), _file_identity(fd))

    def restore() -> None:
        for fd, (copy, identity) in saved.items():
            if _file_identity(fd) != identity:
                os.dup2(copy, fd)
            os.close(copy)

    patches.callback(restore)


def _reporter_on_its_own_descriptor(patches: Patches, writer: TerminalWriter) -> None:
    original: Any = terminal_file(writer)
    try:
        fd = original.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (an in-process pytester run): nothing a test can swap
    original.flush()
    own = io.TextIOWrapper(
        io.FileIO(os.dup(fd), "w"),
        encoding=getattr(original, "encoding", None) or "utf-8",
        errors=getattr(original, "errors", None) or "strict",
        write_through=True,
    )
    patches.callback(own.close)
    replace_terminal_file(patches, writer, own)


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


def _setup_show_per_item(patches: Patches, config: pytest.Config, writer: TerminalWriter) -> None:
    get_terminal_writer = config.get_terminal_writer
    patches.setattr(config, "get_terminal_writer", lambda: _RECORDER.get() or get_terminal_writer())
    patches.setattr(
        setuponly, "_show_fixture_action", _recorded(setuponly._show_fixture_action, writer)
    )
    patches.setattr(runner, "show_test_item", _recorded(runner.show_test_item, writer))
    patches.setattr(FixtureDef, "cached_param", _cached_param_per_instance())


def terminal_per_item(patches: Patches, config: pytest.Config) -> None:
    """Everything above, until ``patches`` are undone."""
    _restore_descriptors_afterwards(patches)
    if config.pluginmanager.getplugin("terminalreporter") is None:
        return
    writer = config.get_terminal_writer()
    _reporter_on_its_own_descriptor(patches, writer)
    if config.option.setupshow:
        _setup_show_per_item(patches, config, writer)
