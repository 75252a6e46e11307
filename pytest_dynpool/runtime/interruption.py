"""Where a Ctrl-C during the pooled phase is shown to have happened: in a test, as in pytest.

In plain pytest, Ctrl-C raises ``KeyboardInterrupt`` in the running test, and the
terminal shows that line. In the pool the signal reaches the main thread, which
lets the tests in flight finish before it raises; so the interrupt is given, at
the moment of the signal, the stack of the test that has been in flight longest
(``types.TracebackType`` builds a traceback from those frames).
"""

from __future__ import annotations

import sys
from types import FrameType, TracebackType

from ..isolation.item_context import threads_of_tests_in_flight


def _traceback_of(frame: FrameType | None) -> TracebackType | None:
    traceback: TracebackType | None = None
    while frame is not None:  # innermost first: each becomes the next of its caller
        traceback = TracebackType(traceback, frame, frame.f_lasti, frame.f_lineno)
        frame = frame.f_back
    return traceback


def keyboard_interrupt_in_a_test() -> KeyboardInterrupt:
    """A ``KeyboardInterrupt`` located where the longest-running pooled test is now."""
    interrupt = KeyboardInterrupt()
    frames = sys._current_frames()
    for thread_id in threads_of_tests_in_flight():
        frame = frames.get(thread_id)
        if frame is not None:
            return interrupt.with_traceback(_traceback_of(frame))
    return interrupt
