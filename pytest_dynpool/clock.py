"""The real clocks, which a test that fakes time does not reach.

freezegun replaces ``time.monotonic``/``perf_counter``/``time`` and, in every
loaded module, each attribute whose value *is* one of those functions; its
fakes return real time only to callers on its ignore list. A pooled test inside
``freeze_time`` would so fake the clock the pool reads on other threads: its
timeouts, limits, durations and wall. The functions are captured here at import,
inside an object (freezegun's scan looks at module attributes only), and every
reading of time in the plugin goes through this module.

time-machine instead patches the C functions themselves (``time.time`` and the
like), which no capture escapes; it leaves ``monotonic`` alone. So the wall
clock here is the epoch read once at import plus the real monotonic time since:
neither tool reaches it. It follows the system clock's rate (NTP slews both) but
not a step of it during the run, which no lease or report here needs.
"""

from __future__ import annotations

import functools
import time as _time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Final

Clock = Callable[[], float]


class _Captured:
    """The clock functions as they were at import: instance attributes, out of a scan's reach."""

    __slots__ = (
        "datetime",
        "epoch_at_import",
        "monotonic",
        "monotonic_at_import",
        "perf_counter",
        "process_time",
        "sleep",
    )

    def __init__(self) -> None:
        self.monotonic: Clock = _time.monotonic
        self.perf_counter: Clock = _time.perf_counter
        self.process_time: Clock = _time.process_time
        self.sleep: Callable[[float], None] = _time.sleep
        self.datetime: type[datetime] = datetime
        self.monotonic_at_import = self.monotonic()
        self.epoch_at_import = _time.time()


_REAL: Final = _Captured()


# The two clocks read for every item (pytest's own timing reads ``perf_counter`` six
# times per test) are partials of the captured functions: called in C, with no Python
# frame, and still out of freezegun's reach, which replaces attributes by identity.
monotonic: Final[Clock] = functools.partial(_REAL.monotonic)
"""``time.monotonic()``, real even while a test fakes time."""

perf_counter: Final[Clock] = functools.partial(_REAL.perf_counter)
"""``time.perf_counter()``, real even while a test fakes time."""


def wall_time() -> float:
    """``time.time()`` (seconds since the epoch), real even while a test fakes time."""
    return _REAL.epoch_at_import + (_REAL.monotonic() - _REAL.monotonic_at_import)


def process_time() -> float:
    """``time.process_time()``: CPU time of the process (no tool above fakes it)."""
    return _REAL.process_time()


def sleep(seconds: float) -> None:
    """``time.sleep``, held here so that one module owns every use of time."""
    _REAL.sleep(seconds)


def utc_now() -> datetime:
    """``datetime.now(timezone.utc)`` from the real clock and the real ``datetime`` class."""
    return _REAL.datetime.fromtimestamp(wall_time(), timezone.utc)
