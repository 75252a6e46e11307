"""pytest's capture per pooled item: each phase's stdout and stderr in the item's own buffers.

pytest's ``CaptureManager`` keeps one capture fixture and one global capture for
the process; here the capture fixture is the running item's, the global capture
stays with the main thread, and each phase of an item reads its own buffers.

Phase buffers under ``--capture=fd`` are temporary files, as pytest's are, so
that what a child made by ``fork`` prints lands in the test's report: before
a fork the forking item's buffers are opened, and the child inherits them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from tempfile import TemporaryFile
from typing import Any, TextIO

import pytest

from ..pytest_compat import CaptureFixture, CaptureIO, CaptureManager, sys_capture_class_for
from .item_context import ITEM_CONTEXT, PROCESS_STREAM, ItemContext, active_context
from .pool_streams import CLOSED_FILE, POOL, STDERR, STDOUT


class PhaseBuffer:
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
    if POOL and (context := active_context()) is not None:
        for phase in context.phase_output:
            if isinstance(phase, PhaseBuffer) and phase._file_backed:
                phase.open()


_fork_hook_registered = False


def register_fork_hook() -> None:
    # os.register_at_fork cannot be undone: the hook does nothing outside the pool.
    global _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_open_phase_files_before_fork)
        _fork_hook_registered = True


_original_start = CaptureFixture._start


def start_capture_fixture(fixture: CaptureFixture[Any]) -> None:
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


class ConcurrentCaptureManager(CaptureManager):
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
    capman: ConcurrentCaptureManager, context: ItemContext, when: str, item: pytest.Item
) -> Iterator[None]:
    """pytest's ``item_capture`` for one item: its own streams point at the capture."""
    __tracebackhide__ = True
    pool = POOL[-1]  # as pool_streams(): this runs three times per test
    buffers: list[PhaseBuffer] = []
    if capman.is_globally_capturing():
        if context.closed_capture:
            raise ValueError(CLOSED_FILE)  # pytest cannot resume a closed capture either
        tee = capman._method == "tee-sys"
        file_backed = capman._method == "fd"
        buffers = [  # written out: three phases per test
            PhaseBuffer(pool.real[STDOUT] if tee else None, file_backed=file_backed),
            PhaseBuffer(pool.real[STDERR] if tee else None, file_backed=file_backed),
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
