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

Phase buffers under ``--capture=fd`` are temporary files, as pytest's are, so
that what a child made by ``fork`` prints lands in the test's report: before
a fork the forking item's buffers are opened, and the child inherits them.

File descriptors are process-wide and cannot be split by thread: on workers
``capfd``/``capfdbinary`` capture at the ``sys`` level, and output that C code or
subprocesses write to fd 1 or 2 reaches the terminal.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from tempfile import TemporaryFile
from typing import Any, TextIO

import pytest

from ..patching import Patches
from ..pytest_compat import (
    CaptureFixture,
    CaptureIO,
    CaptureManager,
    global_capture_streams,
    sys_capture_class_for,
)
from .item_context import ITEM_CONTEXT, PROCESS_STREAM, ItemContext, active_context
from .session_streams import BYTES_ROUTE, direct_write, is_routable

STDOUT, STDERR, STDIN = 0, 1, 2
CLOSED_FILE = "I/O operation on closed file."


class OrphanOutput:
    """Output of threads that belong to no running pooled test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


@dataclass
class _PoolStreams:
    """The process's side of the streams while the pool runs."""

    values: list[Any]  # sys.stdout/stderr for code outside any item (the main thread)
    real: list[Any]  # the streams when the pool started: the terminal
    session: list[Any]  # pytest's session capture streams, or None when not capturing
    orphans: OrphanOutput | None


_POOL: list[_PoolStreams] = []  # one entry while the pool runs


def _pool() -> _PoolStreams:
    return _POOL[-1]


def _current(index: int) -> Any:
    """What ``sys.stdout`` (or stderr) is for the caller."""
    pool = _pool()
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
        _pool().values[index] = value


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
        return _pool().real[self._index] if target is self else target

    def write(self, text: str) -> int:
        written: int = self._target().write(text)
        return written

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


def _sink(index: int) -> Any:
    """Where a write to the session capture stream goes: the writer's phase buffer."""
    pool = _pool()
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
    session = _pool().session
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
    return STDOUT if stream is _pool().session[STDOUT] else STDERR


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


class _PhaseBuffer:
    """One phase's stdout or stderr, made on the first write: most phases write nothing.

    A temporary file under ``--capture=fd`` (a forked child writes into it too), else
    memory; either way bytes that are not UTF-8 read back as replacement characters.
    """

    __slots__ = ("_file_backed", "_io", "_tee")

    def __init__(self, tee: TextIO | None, *, file_backed: bool) -> None:
        self._io: io.TextIOWrapper | None = None
        self._tee = tee
        self._file_backed = file_backed

    def open(self) -> io.TextIOWrapper:
        if self._io is None:
            if self._file_backed:
                self._io = io.TextIOWrapper(
                    TemporaryFile(buffering=0),  # noqa: SIM115 - closed by read_and_close
                    encoding="utf-8",
                    errors="replace",
                    newline="",
                    write_through=True,
                )
            else:
                self._io = CaptureIO()
        return self._io

    def write(self, text: str) -> int:
        written = self.open().write(text)
        if self._tee is not None:
            self._tee.write(text)
        return written

    @property
    def buffer(self) -> Any:
        return self.open().buffer

    def flush(self) -> None:
        pass

    def read_and_close(self) -> str:
        if self._io is None:
            return ""
        if self._file_backed:
            self._io.seek(0)
            text = self._io.read()
        else:
            text = self._io.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]
        self._io.close()
        self._io = None
        return text


def _open_phase_files_before_fork() -> None:
    """A child made by ``fork`` inherits the forking item's phase files, as in pytest."""
    if _POOL and (context := active_context()) is not None:
        for phase in context.phase_output:
            if isinstance(phase, _PhaseBuffer) and phase._file_backed:
                phase.open()


_fork_hook_registered = False


def _register_fork_hook() -> None:
    # os.register_at_fork cannot be undone: the hook does nothing outside the pool.
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_open_phase_files_before_fork)
        _fork_hook_registered = True


_original_start = CaptureFixture._start


def _start(fixture: CaptureFixture[Any]) -> None:
    """``CaptureFixture._start``; on a worker ``capfd`` captures at the ``sys`` level."""
    if active_context() is not None and fixture._capture is None:
        fixture.captureclass = sys_capture_class_for(fixture.captureclass)
    _original_start(fixture)


def _get_capture_fixture(capman: CaptureManager) -> Any:
    context = ITEM_CONTEXT.get()
    if context is None or context.closed:
        context = active_context()
    if context is None:
        return capman.__dict__.get("_capture_fixture")
    return context.capture_fixture


def _set_capture_fixture(capman: CaptureManager, fixture: Any) -> None:
    context = active_context()
    if context is None:
        capman.__dict__["_capture_fixture"] = fixture
    else:
        context.capture_fixture = fixture


class _ConcurrentCaptureManager(CaptureManager):
    """One capture fixture per item; the global capture stays with the main thread.

    The global capture stays suspended while the pool runs: on a worker,
    "resuming" it means pointing the item's own ``sys.stdout`` at the session
    capture stream (``_item_phase_capture``).
    """

    _capture_fixture = property(_get_capture_fixture, _set_capture_fixture)

    def resume_global_capture(self) -> None:
        if active_context() is None:
            super().resume_global_capture()

    def suspend_global_capture(self, in_: bool = False) -> None:
        if active_context() is None:
            super().suspend_global_capture(in_)

    def read_global_capture(self) -> Any:
        if active_context() is None:
            return super().read_global_capture()
        return "", ""

    @contextmanager
    def global_and_fixture_disabled(self) -> Iterator[None]:
        context = active_context()
        if context is None:
            with super().global_and_fixture_disabled():
                yield
            return
        fixture = self._capture_fixture
        do_fixture = fixture is not None and fixture._is_started()
        if do_fixture:
            self.suspend_fixture()
        saved = list(context.streams)
        # As pytest's suspend_global_capture(in_=False): stdin stays captured.
        context.streams[STDOUT] = context.streams[STDERR] = PROCESS_STREAM
        try:
            yield
        finally:
            context.streams[:] = saved
            if do_fixture:
                self.resume_fixture()

    def item_capture(self, when: str, item: pytest.Item) -> Any:
        context = ITEM_CONTEXT.get()
        if context is None or context.closed:
            context = active_context()
        if context is None:
            return super().item_capture(when, item)
        return _item_phase_capture(self, context, when, item)


@contextmanager
def _item_phase_capture(
    capman: _ConcurrentCaptureManager, context: ItemContext, when: str, item: pytest.Item
) -> Iterator[None]:
    """pytest's ``item_capture`` for one item: its own streams point at the capture."""
    __tracebackhide__ = True
    pool = _POOL[-1]  # as _pool(): this runs three times per test
    buffers: list[_PhaseBuffer] = []
    if capman.is_globally_capturing():
        if context.closed_capture:
            raise ValueError(CLOSED_FILE)  # pytest cannot resume a closed capture either
        tee = capman._method == "tee-sys"
        file_backed = capman._method == "fd"
        buffers = [  # written out: three phases per test
            _PhaseBuffer(pool.real[STDOUT] if tee else None, file_backed=file_backed),
            _PhaseBuffer(pool.real[STDERR] if tee else None, file_backed=file_backed),
        ]
        context.phase_output[:] = buffers
        context.streams[:] = pool.session  # stdin too: pytest's DontReadFromInput
    capman.activate_fixture()
    try:
        yield
    finally:
        capman.deactivate_fixture()
        if buffers:
            # As pytest's suspend: whatever the phase assigned to sys.stdout ends here.
            context.streams[:] = [PROCESS_STREAM] * 3
            context.phase_output[:] = [None, None]
            out, err = buffers[0].read_and_close(), buffers[1].read_and_close()
            if context.closed_capture:
                raise ValueError(CLOSED_FILE)  # plain pytest fails to read it here
            item.add_report_section(when, "stdout", out)
            item.add_report_section(when, "stderr", err)


def capture_per_item(patches: Patches, config: pytest.Config) -> OrphanOutput:
    """Per-item ``sys.stdout``/``sys.stderr`` and capture manager, until ``patches`` are undone."""
    orphans = OrphanOutput()
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        return orphans
    _register_fork_hook()
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
    _POOL.append(_PoolStreams(list(saved_streams), saved_streams, session, keep_orphans))
    patches.callback(_POOL.pop)
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
    patches.set_class(capman, _ConcurrentCaptureManager)
    patches.setattr(CaptureFixture, "_start", _start)
    return orphans
