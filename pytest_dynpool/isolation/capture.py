"""stdout/stderr capture per pooled item, at the ``sys`` level.

pytest captures by swapping ``sys.stdout``/``sys.stderr`` (and file descriptors
1 and 2) for the whole process around each phase, and ``capsys``/``capfd`` swap
them again inside the test. For the pool's duration ``sys.stdout`` and
``sys.stderr`` become routing streams instead: a write goes to the top of the
writing item's own stack of sinks (its phase buffer, then its capture fixture's
buffer on top). Writes from the main thread go straight through; writes from
other threads that belong to no running test go to a session-level buffer.

File descriptors are process-wide and cannot be split by thread: on workers
``capfd``/``capfdbinary`` capture at the ``sys`` level, and output that C code or
subprocesses write to fd 1 or 2 reaches the terminal.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import pytest

from ..patching import Patches
from ..pytest_compat import CaptureFixture, CaptureIO, CaptureManager, MultiCapture, TeeCaptureIO
from .item_context import ItemContext, active_context

STDOUT, STDERR = 0, 1


class OrphanOutput:
    """Output of threads that belong to no running pooled test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


def _top(context: ItemContext, index: int) -> Any:
    stack = context.output[index]
    return stack[-1] if stack else None


class _RoutingBuffer:
    """``sys.stdout.buffer`` for the routing stream: bytes follow the same route."""

    def __init__(self, stream: RoutingStream) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        sink = self._stream.sink()
        if isinstance(sink, OrphanOutput):
            return sink.write(data.decode("utf-8", "replace"))
        written: int = sink.buffer.write(data)
        return written

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream.target.buffer, name)


class RoutingStream:
    """Stands in for ``sys.stdout``/``sys.stderr``: writes go to the item in flight."""

    def __init__(self, target: TextIO, index: int, orphans: OrphanOutput | None) -> None:
        self.target = target
        self._index = index
        self._orphans = orphans
        self.buffer = _RoutingBuffer(self)

    def sink(self) -> Any:
        context = active_context()
        if context is not None:
            top = _top(context, self._index)
            return self.target if top is None else top
        if self._orphans is None or threading.current_thread() is threading.main_thread():
            return self.target
        return self._orphans

    def write(self, text: str) -> int:
        return self.sink().write(text)  # type: ignore[no-any-return]

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        sink = self.sink()
        if sink is self.target:
            self.target.flush()

    def isatty(self) -> bool:
        """A captured test sees no terminal, as under pytest's own capture."""
        sink = self.sink()
        return sink is self.target and self.target.isatty()

    @property
    def encoding(self) -> str:
        sink = self.sink()
        return self.target.encoding if sink is self.target else "UTF-8"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class _ItemSysCapture:
    """A capture fixture's stream (``CaptureBase`` interface) on the item's own stack."""

    EMPTY_BUFFER: Any = ""

    def __init__(self, fd: int, *, binary: bool, tee: bool) -> None:
        self._index = fd - 1
        self._binary = binary
        self._context = active_context()
        below: Any = _Below(self)
        self.tmpfile: CaptureIO = TeeCaptureIO(below) if tee else CaptureIO()
        self._started = False

    def _stack(self) -> list[Any]:
        assert self._context is not None
        return self._context.output[self._index]

    def start(self) -> None:
        self._stack().append(self.tmpfile)
        self._started = True

    def suspend(self) -> None:
        self._remove()

    def resume(self) -> None:
        self.start()

    def done(self) -> None:
        self._remove()
        self.tmpfile.close()

    def _remove(self) -> None:
        stack = self._stack()
        if self._started and self.tmpfile in stack:
            stack.remove(self.tmpfile)
        self._started = False

    def snap(self) -> Any:
        self.tmpfile.seek(0)
        data: Any = self.tmpfile.buffer.read() if self._binary else self.tmpfile.read()
        self.tmpfile.seek(0)
        self.tmpfile.truncate()
        return data

    def below(self) -> Any:
        """What this capture covers: the phase's buffer, or the terminal."""
        under = [sink for sink in self._stack() if sink is not self.tmpfile]
        return under[-1] if under and under[-1] is not None else _real_stream(self._index + 1)

    def writeorg(self, data: Any) -> None:
        """Hand uncollected output on to whatever is under this capture, as pytest does."""
        sink = self.below()
        if self._binary:
            sink.buffer.write(data)
        else:
            sink.write(data)
        sink.flush()


class _Below:
    """The stream that ``capteesys`` echoes to: what its capture covers, as in pytest."""

    def __init__(self, capture: _ItemSysCapture) -> None:
        self._capture = capture

    def write(self, text: str) -> int:
        written: int = self._capture.below().write(text)
        return written

    def flush(self) -> None:
        self._capture.below().flush()


class _ItemSysCaptureBinary(_ItemSysCapture):
    EMPTY_BUFFER = b""


_REAL_STREAMS: list[TextIO] = []


def _real_stream(fd: int) -> TextIO:
    return _REAL_STREAMS[fd - 1]


_original_start = CaptureFixture._start


def _start(fixture: CaptureFixture[Any]) -> None:
    """``CaptureFixture._start`` with the item's own streams when on a worker."""
    if active_context() is None:
        _original_start(fixture)
        return
    if fixture._capture is None:
        binary = isinstance(fixture.captureclass.EMPTY_BUFFER, bytes)
        capture_class = _ItemSysCaptureBinary if binary else _ItemSysCapture
        tee = bool(fixture._config.get("tee")) if hasattr(fixture, "_config") else False
        fixture._capture = MultiCapture(
            in_=None,
            out=capture_class(1, binary=binary, tee=tee),  # type: ignore[arg-type]
            err=capture_class(2, binary=binary, tee=tee),  # type: ignore[arg-type]
        )
        fixture._capture.start_capturing()


def _get_capture_fixture(capman: CaptureManager) -> Any:
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

    The global capture stays suspended while the pool runs (the routing streams
    replace it); ``--setup-show`` and others suspend and resume it around their
    output, which from a worker would redirect every thread.
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
        context.output[STDOUT].append(None)
        context.output[STDERR].append(None)
        try:
            yield
        finally:
            context.output[STDOUT].pop()
            context.output[STDERR].pop()
            if do_fixture:
                self.resume_fixture()

    def item_capture(self, when: str, item: pytest.Item) -> Any:
        context = active_context()
        if context is None:
            return super().item_capture(when, item)
        return _item_phase_capture(self, context, when, item)


class _PhaseBuffer:
    """One phase's stdout or stderr, made on the first write: most phases write nothing."""

    __slots__ = ("_io", "_tee")

    def __init__(self, tee: TextIO | None) -> None:
        self._io: CaptureIO | None = None
        self._tee = tee

    def _open(self) -> CaptureIO:
        if self._io is None:
            self._io = CaptureIO() if self._tee is None else TeeCaptureIO(self._tee)
        return self._io

    def write(self, text: str) -> int:
        return self._open().write(text)

    @property
    def buffer(self) -> Any:
        return self._open().buffer

    def flush(self) -> None:
        pass

    def getvalue(self) -> str:
        return "" if self._io is None else self._io.getvalue()


@contextmanager
def _item_phase_capture(
    capman: _ConcurrentCaptureManager, context: ItemContext, when: str, item: pytest.Item
) -> Iterator[None]:
    sinks: list[_PhaseBuffer] = []
    if capman.is_globally_capturing():
        tee = capman._method == "tee-sys"
        sinks = [_PhaseBuffer(_real_stream(fd) if tee else None) for fd in (1, 2)]
        context.output[STDOUT].append(sinks[STDOUT])
        context.output[STDERR].append(sinks[STDERR])
    capman.activate_fixture()
    try:
        yield
    finally:
        capman.deactivate_fixture()
        if sinks:
            for index, sink in enumerate(sinks):
                context.output[index].remove(sink)
            item.add_report_section(when, "stdout", sinks[STDOUT].getvalue())
            item.add_report_section(when, "stderr", sinks[STDERR].getvalue())


def capture_per_item(patches: Patches, config: pytest.Config) -> OrphanOutput:
    """Routing streams and the per-item capture manager, until ``patches`` are undone."""
    orphans = OrphanOutput()
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        return orphans
    saved_streams = sys.stdout, sys.stderr
    _REAL_STREAMS[:] = [sys.stdout, sys.stderr]
    keep_orphans = orphans if capman.is_globally_capturing() else None
    patches.setattr(sys, "stdout", RoutingStream(saved_streams[0], STDOUT, keep_orphans))
    patches.setattr(sys, "stderr", RoutingStream(saved_streams[1], STDERR, keep_orphans))
    patches.set_class(capman, _ConcurrentCaptureManager)
    patches.setattr(CaptureFixture, "_start", _start)
    return orphans
