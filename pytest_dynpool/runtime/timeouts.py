"""Per-item timeouts: deadlines, abandoning a stuck item, and the report plain pytest would show.

An item past its deadline cannot be stopped (it is a thread): it is abandoned.
Its report sink stops sending, its worker thread is left behind and replaced
(by ``WorkerPool``), the coordinator logs a failed report in the phase where it
is stuck, and from then on report hooks called on that thread reach no plugin.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from pluggy import HookRelay

from .. import clock
from ..isolation.item_context import HookCall
from ..patching import Patches, patch_attribute
from ..pytest_compat import inner_hookexec_of

if TYPE_CHECKING:
    from .item_events import ItemReports


@dataclass(frozen=True)
class Expired:
    """An abandoned item: its index, the thread it is stuck on, its reports not yet sent."""

    index: int
    thread: threading.Thread
    unsent: list[HookCall]


class Deadlines:
    """The items in flight that have a timeout; called under the pool's claim lock."""

    def __init__(self, timeouts: Sequence[float | None]) -> None:
        self._timeouts = timeouts
        self.active = any(timeout is not None for timeout in timeouts)
        self._watched: dict[int, tuple[threading.Thread, float, ItemReports]] = {}
        self._abandoned: set[int] = set()
        self.abandoned_threads: set[threading.Thread] = set()
        self._silencer: Silencer | None = None
        self._ended_early: list[threading.Thread] = []
        self._lock = threading.Lock()

    def silence_left_behind(
        self, patches: Patches, pluginmanager: pytest.PytestPluginManager, hooks: Collection[str]
    ) -> None:
        """From now on, the threads left behind report to no plugin (``Silencer``)."""
        silencer = Silencer(pluginmanager, self.abandoned_threads, hooks)
        with self._lock:
            self._silencer = silencer
            ended, self._ended_early = self._ended_early, []
        for thread in ended:
            silencer.thread_ended(thread)
        silencer.install(patches)

    def left_behind_thread_ended(self, thread: threading.Thread) -> None:
        """Called by a thread left behind, as it ends."""
        with self._lock:
            silencer = self._silencer
            if silencer is None:
                self._ended_early.append(thread)
        if silencer is not None:
            silencer.thread_ended(thread)

    def timeout_of(self, index: int) -> float | None:
        return self._timeouts[index]

    def watch(self, index: int, reports: ItemReports) -> None:
        """Start the clock of an item just claimed by this thread (if it has a timeout)."""
        timeout = self._timeouts[index]
        if timeout is not None:
            deadline = clock.monotonic() + timeout
            self._watched[index] = (threading.current_thread(), deadline, reports)

    def reports_of(self, index: int) -> ItemReports | None:
        watched = self._watched.get(index)
        return None if watched is None else watched[2]

    def unwatch(self, index: int) -> bool:
        """The item ended; False when it had been abandoned already."""
        if index in self._abandoned:
            return False
        self._watched.pop(index, None)
        return True

    def next_deadline(self) -> float | None:
        return min((deadline for _, deadline, _ in self._watched.values()), default=None)

    def expire(self, now: float) -> list[Expired]:
        """Abandon every item past its deadline."""
        expired = [
            Expired(index, thread, reports.abandon())
            for index, (thread, deadline, reports) in self._watched.items()
            if deadline <= now
        ]
        for each in expired:
            del self._watched[each.index]
            self._abandoned.add(each.index)
            self.abandoned_threads.add(each.thread)
        return expired

    def threads_left_behind(self) -> int:
        return sum(thread.is_alive() for thread in self.abandoned_threads)


def phase_stuck_in(logged: Mapping[str, str]) -> str:
    """The phase an item is stuck in, from what has been logged of it."""
    if "setup" not in logged:
        return "setup"
    if logged["setup"] == "passed" and "call" not in logged:
        return "call"
    return "teardown"


def report_timeout(
    hook: HookRelay,
    item: pytest.Item,
    timeout: float,
    thread: threading.Thread,
    logged: Mapping[str, str],
) -> None:
    """Log what plain pytest would have shown had the item failed where it is stuck."""
    frame = sys._current_frames().get(thread.ident or -1)
    stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)\n"
    phase = phase_stuck_in(logged)
    message = (
        f"Timeout: {item.nodeid} was still running after {timeout:g}s "
        f"(dynpool timeout, in {phase}); stack of {thread.name}, which is left behind:\n"
        f"{stack}"
    )
    now = clock.wall_time()
    if "start" not in logged:
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for when, outcome, longrepr in (
        (phase, "failed", message),
        *([("teardown", "passed", None)] if phase != "teardown" else []),
    ):
        report = pytest.TestReport(
            item.nodeid,
            item.location,
            dict.fromkeys(item.keywords, 1),
            outcome,  # type: ignore[arg-type]
            longrepr,
            when,  # type: ignore[arg-type]
            duration=timeout if outcome == "failed" else 0.0,
            start=now,
            stop=now,
            user_properties=item.user_properties,
        )
        hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


class Silencer:
    """Report hooks called on threads left behind by a timeout reach no plugin.

    Their item has been reported as failed already, and they may run on after
    the pooled phase, even after the session. pluggy's ``_inner_hookexec`` is
    wrapped until the session is over *and* every such thread has ended (the
    last one to end puts back exactly what was there), so that a thread freed
    by the session's teardown never reports twice.
    """

    def __init__(
        self,
        pluginmanager: pytest.PytestPluginManager,
        threads: Collection[threading.Thread],
        routed_hooks: Collection[str],
    ) -> None:
        self._threads = threads
        self._ended: set[threading.Thread] = set()
        self._session_over = False
        self._lock = threading.Lock()
        original = inner_hookexec_of(pluginmanager)

        def hookexec(
            name: str, methods: Sequence[object], kwargs: Mapping[str, object], firstresult: bool
        ) -> object:
            if name in routed_hooks and threading.current_thread() in threads:
                return None if firstresult else []
            return original(name, methods, kwargs, firstresult)

        self._undo = patch_attribute(pluginmanager, "_inner_hookexec", hookexec, if_still_ours=True)

    def install(self, patches: Patches) -> None:
        """The session's patches end the silence (once the threads have ended too)."""
        patches.callback(self.session_over)

    def session_over(self) -> None:
        with self._lock:
            self._session_over = True
            self._undo_if_quiet()

    def thread_ended(self, thread: threading.Thread) -> None:
        with self._lock:
            self._ended.add(thread)
            self._undo_if_quiet()

    def _undo_if_quiet(self) -> None:
        if self._session_over and all(
            thread in self._ended or not thread.is_alive() for thread in self._threads
        ):
            self._undo()
