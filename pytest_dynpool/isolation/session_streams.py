"""The binary buffers of pytest's session capture streams, made routable from the start.

A module may keep ``sys.stdout.buffer`` at import time (structlog's tests
parametrize with it) and expect the very same object in its tests, as plain
pytest gives. Writes to that object must still reach the writing test's
report on the pool, and neither ``io.FileIO`` nor ``io.BytesIO`` lets a write be
intercepted. So as soon as pytest starts its global capture, before any
conftest or test module is imported, each capture stream is re-initialised on
a subclass of its buffer's type over the same file (or with the same content):
outside the pool it writes as the original does; while the pool runs, writes go
where ``capture`` routes them. Undone at the end of the session.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import pytest

from ..pytest_compat import global_capture_streams

# Set by ``capture`` while the pool runs: (buffer, data) -> bytes written.
BYTES_ROUTE: list[Callable[[Any, Any], int]] = []


class _SessionFileIO(io.FileIO):
    """The buffer of ``--capture=fd``'s streams: a ``FileIO`` on the same temporary file."""

    def write(self, data: Any) -> int:
        if BYTES_ROUTE:
            return BYTES_ROUTE[-1](self, data)
        return super().write(data)


class _SessionBytesIO(io.BytesIO):
    """The buffer of ``--capture=sys``/``tee-sys``'s streams."""

    def write(self, data: Any) -> int:
        if BYTES_ROUTE:
            return BYTES_ROUTE[-1](self, data)
        return super().write(data)


for _routable in (_SessionFileIO, _SessionBytesIO):
    _routable.__module__ = "_io"  # reprs and ``sys.stdout.name`` read as in plain pytest
    _routable.__qualname__ = _routable.__bases__[0].__name__


def is_routable(buffer: object) -> bool:
    return isinstance(buffer, (_SessionFileIO, _SessionBytesIO))


def direct_write(buffer: Any, data: Any) -> int:
    """Write ``data`` into a session buffer itself, bypassing the route."""
    base: Any = type(buffer).__bases__[0]
    written: int = base.write(buffer, data)
    return written


def _reinit(stream: io.TextIOWrapper, buffer: Any) -> None:
    io.TextIOWrapper.__init__(
        stream,
        buffer,
        encoding=stream.encoding,
        errors=stream.errors,
        newline="",  # what every pytest capture stream uses
        write_through=stream.write_through,
    )


def routable_session_buffers(streams: tuple[Any, ...]) -> Callable[[], None]:
    """Give ``streams`` routable buffers; returns the undo, which puts the originals back."""
    undos: list[Callable[[], None]] = []
    for stream in streams:
        if not isinstance(stream, io.TextIOWrapper):
            continue
        original = stream.buffer
        routable: io.FileIO | io.BytesIO
        if type(original) is io.FileIO:
            routable = _SessionFileIO(os.dup(original.fileno()), "rb+")
        elif type(original) is io.BytesIO:
            routable = _SessionBytesIO(original.getvalue())
            routable.seek(original.tell())
        else:
            continue
        stream.flush()
        _reinit(stream, routable)
        undos.append(_undo(stream, original, routable))

    def undo() -> None:
        for each in reversed(undos):
            each()

    return undo


def _undo(stream: io.TextIOWrapper, original: Any, routable: Any) -> Callable[[], None]:
    def undo() -> None:
        if stream.buffer is not routable:
            return  # pytest replaced or closed it already
        if routable.closed:
            original.close()
            return
        if isinstance(routable, io.BytesIO):
            original.seek(0)
            original.truncate()
            original.write(routable.getvalue())
            original.seek(routable.tell())
        _reinit(stream, original)
        routable.close()

    return undo


def make_session_buffers_routable(config: pytest.Config) -> None:
    """For the session: pytest's capture streams get routable buffers (undone at its end)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        config.add_cleanup(routable_session_buffers(global_capture_streams(capman)[:2]))
