"""stdout/stderr per pooled item: ``sys.stdout``, ``sys.stderr`` and ``sys.stdin`` are per test.

In plain pytest ``sys.stdout`` is one process-wide variable that many hands
assign: pytest's capture sets it to the session's one capture stream around
every phase (in every capture mode; the same object all session, so a module
that kept ``sys.stdout`` at import still holds it in its tests), ``capsys``
sets it to its own buffer, and tests set it too (``contextlib.redirect_stdout``,
doctest's runner, ``sys.stdout = StringIO()``). On threads every such
assignment would redirect every other test. For the pool's duration:

- ``sys.stdout``/``sys.stderr`` as Python code reads and assigns them are per
  item: the ``sys`` module's class gets two properties over the running item's
  ``ItemContext.streams`` (outside any item, the process's values). pytest's
  capture, ``capsys``, ``redirect_stdout`` and doctest assign through them as
  they always do, and an item's assignments end with its phase, as pytest's
  capture ends them;
- ``print`` and C code read the interpreter's ``sys`` dict directly: there a
  ``StreamRouter`` forwards each call to the caller's own ``sys.stdout``;
- the session's capture streams keep their identity and type, with a class
  swap that sends their writes to the writing item's phase buffer; their
  ``buffer`` objects, made routable when the session started
  (``session_streams``), route bytes the same way. Closing one closes it for
  the item that closed it only: that item errors as in plain pytest, where the
  later tests would error too.

The phase buffers and pytest's capture manager per item live in ``phase_capture``;
the pool's own side of the streams in ``pool_streams``.

File descriptors are process-wide and cannot be split by thread: on workers
``capfd``/``capfdbinary`` capture at the ``sys`` level, and output that C code or
subprocesses write to fd 1 or 2 reaches the terminal.
"""

from __future__ import annotations

import io
import sys
import threading
import types
from typing import Any

import pytest

from ..patching import Patches
from ..pytest_compat import CaptureFixture, global_capture_streams
from .item_context import PROCESS_STREAM, active_context
from .phase_capture import ConcurrentCaptureManager, register_fork_hook, start_capture_fixture
from .pool_streams import (
    CLOSED_FILE,
    POOL,
    STDERR,
    STDIN,
    STDOUT,
    OrphanOutput,
    PoolStreams,
    pool_streams,
)
from .session_streams import BYTES_ROUTE, direct_write, is_routable


def _current(index: int) -> Any:
    """What ``sys.stdout`` (or stderr) is for the caller."""
    pool = pool_streams()
    context = active_context()
    if context is not None:
        value = context.streams[index]
        return pool.values[index] if value is PROCESS_STREAM else value
    if pool.orphans is not None and threading.current_thread() is not threading.main_thread():
        return pool.session[index]  # a stray thread writes into "the capture", as in pytest
    return pool.values[index]


def _assign(index: int, value: Any) -> None:
    context = active_context()
    if context is not None:
        context.streams[index] = value
    else:
        pool_streams().values[index] = value


def _stream_property(index: int) -> property:
    return property(lambda module: _current(index), lambda module, value: _assign(index, value))


class _ContextSysModule(types.ModuleType):
    """``sys`` whose ``stdout`` and ``stderr`` are read and assigned per item."""

    stdout = _stream_property(STDOUT)
    stderr = _stream_property(STDERR)
    stdin = _stream_property(STDIN)


class StreamRouter:
    """Sits in ``sys``'s dict, where ``print`` and C code find it: the caller's stream."""

    def __init__(self, index: int) -> None:
        self._index = index

    def _target(self) -> Any:
        target = _current(self._index)
        return pool_streams().real[self._index] if target is self else target

    def write(self, text: str) -> int:
        written: int = self._target().write(text)
        return written

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


def _sink(index: int) -> Any:
    """Where a write to the session capture stream goes: the writer's phase buffer."""
    pool = pool_streams()
    context = active_context()
    if context is not None:
        if index in context.closed_capture:
            raise ValueError(CLOSED_FILE)
        phase = context.phase_output[index]
        return pool.real[index] if phase is None else phase
    if pool.orphans is None or threading.current_thread() is threading.main_thread():
        return pool.real[index]
    return pool.orphans


def _write_bytes(index: int, data: Any) -> int:
    sink = _sink(index)
    if isinstance(sink, OrphanOutput):
        sink.write(bytes(data).decode("utf-8", "replace"))
        return len(data)
    written: int = sink.buffer.write(data)
    return written


def _route_bytes(buffer: Any, data: Any) -> int:
    """Writes to a session stream's own ``buffer`` (see ``session_streams``) while the pool runs."""
    session = pool_streams().session
    for index in (STDOUT, STDERR):
        if session[index] is not None and buffer is session[index].buffer:
            return _write_bytes(index, data)
    return direct_write(buffer, data)  # a stream of another session


class _RoutedBuffer(io.BufferedIOBase):
    """``buffer`` of a session capture stream whose own buffer cannot route (it was not
    made routable at the session's start: the plugin was loaded late)."""

    def __init__(self, index: int, original: Any) -> None:
        super().__init__()
        self._index = index
        self._original = original

    def write(self, data: Any) -> int:
        return _write_bytes(self._index, data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        _sink(self._index).flush()

    def fileno(self) -> int:
        fileno: int = self._original.fileno()
        return fileno

    def __repr__(self) -> str:
        return repr(self._original)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def _index_of(stream: object) -> int:
    return STDOUT if stream is pool_streams().session[STDOUT] else STDERR


class _RoutedCaptureStream:
    """Mixed into the class of pytest's session capture streams while the pool runs."""

    __slots__ = ()

    def write(self, text: str) -> int:
        written: int = _sink(_index_of(self)).write(text)
        return written

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        _sink(_index_of(self)).flush()

    @property
    def buffer(self) -> Any:
        routed = _ROUTED_BUFFERS[_index_of(self)]
        return super().buffer if routed is None else routed  # type: ignore[misc]

    @property
    def closed(self) -> bool:
        context = active_context()
        return context is not None and _index_of(self) in context.closed_capture

    def close(self) -> None:
        context = active_context()
        if context is not None:
            context.closed_capture.add(_index_of(self))


_ROUTED_BUFFERS: list[_RoutedBuffer | None] = []
_ROUTED_CLASSES: dict[type, type] = {}


def _routed_class(base: type) -> type:
    routed = _ROUTED_CLASSES.get(base)
    if routed is None:
        routed = _ROUTED_CLASSES[base] = types.new_class(
            base.__name__, (_RoutedCaptureStream, base), exec_body=_no_dict
        )
        routed.__module__, routed.__qualname__ = base.__module__, base.__qualname__
    return routed


def _no_dict(namespace: dict[str, Any]) -> None:
    namespace["__slots__"] = ()  # the same layout as pytest's class, for __class__ assignment


def capture_per_item(patches: Patches, config: pytest.Config) -> OrphanOutput:
    """Per-item ``sys.stdout``/``sys.stderr`` and capture manager, until ``patches`` are undone."""
    orphans = OrphanOutput()
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        return orphans
    register_fork_hook()
    namespace = vars(sys)
    saved_streams = [namespace["stdout"], namespace["stderr"], namespace["stdin"]]
    capturing = capman.is_globally_capturing()
    session: list[Any] = list(global_capture_streams(capman)) if capturing else [None] * 3
    if None in session[:STDIN]:
        session = list(saved_streams)  # capturing without a session stream: nothing to keep
        capturing = False
    elif session[STDIN] is None:
        session[STDIN] = saved_streams[STDIN]
    keep_orphans = orphans if capturing else None
    POOL.append(PoolStreams(list(saved_streams), saved_streams, session, keep_orphans))
    patches.callback(POOL.pop)
    if capturing:
        _ROUTED_BUFFERS[:] = [
            None if is_routable(stream.buffer) else _RoutedBuffer(index, stream.buffer)
            for index, stream in enumerate(session[:STDIN])
        ]
        patches.callback(_ROUTED_BUFFERS.clear)
        for stream in session[:STDIN]:
            patches.set_class(stream, _routed_class(type(stream)))
        BYTES_ROUTE.append(_route_bytes)
        patches.callback(BYTES_ROUTE.remove, _route_bytes)
    # In the dict first (print's view), then the per-item view on top of it.
    patches.setattr(sys, "stdout", StreamRouter(STDOUT))
    patches.setattr(sys, "stderr", StreamRouter(STDERR))
    patches.setattr(sys, "stdin", StreamRouter(STDIN))
    patches.set_class(sys, _ContextSysModule)
    patches.set_class(capman, ConcurrentCaptureManager)
    patches.setattr(CaptureFixture, "_start", start_capture_fixture)
    return orphans
