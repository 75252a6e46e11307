"""A recursion limit that never drops below what a running thread needs, and deep worker stacks.

The recursion limit is process-wide. A test that raises it while it runs and puts
it back afterwards (hypothesis does, around every test) is harmless in plain
pytest, where nothing else runs; in the pool another thread may be deeper than
the restored limit at that moment, and CPython then aborts the whole process
("Fatal Python error: Cannot recover from stack overflow"), with every report
lost. While the pool runs:

- ``sys.setrecursionlimit`` records the limit asked for, which
  ``sys.getrecursionlimit`` returns, and sets the real limit to that or to what
  the deepest other thread needs, whichever is higher; a lowering held back
  this way is applied as soon as no thread is that deep (checked again at the
  end of every pooled item);
- threads are started with a C stack as large as the main thread's, so that
  a worker recurses as deep as the main thread's limit allows.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from contextlib import suppress
from types import FrameType

from ..patching import Patches

# CPython aborts when a thread is more than 50 calls past the limit while it
# handles a RecursionError; Python 3.11 also counts C calls in the same depth,
# so a thread's real depth may exceed its count of Python frames.
_DEPTH_FACTOR = 2
_HEADROOM = 100
_DEFAULT_STACK_BYTES = 16 * 1024 * 1024
_MAX_STACK_BYTES = 64 * 1024 * 1024

_original_setrecursionlimit = sys.setrecursionlimit
_original_getrecursionlimit = sys.getrecursionlimit


def _frame_depth(thread_id: int, frames: Mapping[int, FrameType]) -> int:
    frame: FrameType | None = frames.get(thread_id)
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


class _RecursionFloor:
    """The limit the tests asked for, and the higher one the running threads need."""

    def __init__(self) -> None:
        self.requested = _original_getrecursionlimit()
        self.lock = threading.Lock()

    def needed_by_other_threads(self) -> int:
        me = threading.get_ident()
        frames = sys._current_frames()
        deepest = max((_frame_depth(ident, frames) for ident in frames if ident != me), default=0)
        return deepest * _DEPTH_FACTOR + _HEADROOM if deepest else 0

    def set(self, limit: int) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise TypeError(f"'{type(limit).__name__}' object cannot be interpreted as an integer")
        if limit < 1:
            raise ValueError("recursion limit must be greater or equal than 1")
        with self.lock:
            if limit <= _frame_depth(threading.get_ident(), sys._current_frames()):
                _original_setrecursionlimit(limit)  # raises CPython's RecursionError: too low
            self.requested = limit
            self._apply()

    def get(self) -> int:
        return self.requested

    def settle(self) -> None:
        """Apply a lowering that was held back, if no thread is that deep any more."""
        with self.lock:
            if _original_getrecursionlimit() != self.requested:
                self._apply()

    def _apply(self) -> None:
        _original_setrecursionlimit(max(self.requested, self.needed_by_other_threads()))


_floor: _RecursionFloor | None = None


def settle_recursion_limit() -> None:
    """Called when a pooled item ends: the limit may come down to what was asked for."""
    if _floor is not None:
        _floor.settle()


def _main_thread_stack_bytes() -> int:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return _DEFAULT_STACK_BYTES
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return _DEFAULT_STACK_BYTES
    return min(soft, _MAX_STACK_BYTES)


def recursion_safe_threads(patches: Patches) -> None:
    """Install the floor and the stack size on ``patches`` (the pooled phase's)."""
    global _floor
    floor = _RecursionFloor()
    saved_stack_size = threading.stack_size()

    def restore() -> None:
        global _floor
        _floor = None
        threading.stack_size(saved_stack_size)
        # Threads still running (left behind by a timeout) may be deep: keep the floor.
        _original_setrecursionlimit(max(floor.requested, floor.needed_by_other_threads()))

    with suppress(ValueError, RuntimeError):  # the platform refuses the size: keep its own
        threading.stack_size(max(saved_stack_size, _main_thread_stack_bytes()))
    patches.callback(restore)  # undone after the two below, which put sys's functions back
    _floor = floor
    patches.setattr(sys, "setrecursionlimit", floor.set)
    patches.setattr(sys, "getrecursionlimit", floor.get)
