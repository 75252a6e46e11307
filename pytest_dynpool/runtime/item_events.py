"""What a worker hands the coordinator about the item it runs, and the item's frame.

``ItemReports`` collects the report hooks of an item in flight; the worker sends
them as events (``Reported``, ``Finished``) that the coordinator replays on the
main thread. ``RunningItem`` opens and closes the item's context on its worker.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import pytest

from .. import clock
from ..isolation.item_context import HOOK_SINK, HookCall, close_item_context, open_item_context
from .fixture_store import CURRENT_ITEM


@dataclass(frozen=True, slots=True)
class Reported:
    """Report hooks of an item so far, ending with a failed report to log now."""

    index: int
    calls: list[HookCall]
    logged: threading.Event


@dataclass(frozen=True, slots=True)  # one per item
class Finished:
    index: int
    calls: list[HookCall]
    started: float
    ended: float
    error: BaseException | None
    worker: str  # the name of the thread that ran the item


@dataclass(frozen=True)
class WorkerExited:
    error: BaseException | None = None


@dataclass(frozen=True)
class Interrupted:
    """Ctrl-C arrived: stop dispatching, let the items in flight finish."""


Event = Reported | Finished | WorkerExited | Interrupted


@dataclass(slots=True)  # one per item
class ItemReports:
    """Collects the report hooks of one item on its worker."""

    index: int
    events: queue.SimpleQueue[Event]
    stopped: threading.Event
    calls: list[HookCall] = field(default_factory=list)
    # Set by the coordinator when the item times out: from then on nothing is sent.
    abandoned: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, call: HookCall) -> None:
        with self.lock:
            if self.abandoned:
                return
            self.calls.append(call)
            report = call.kwargs.get("report")
            if not getattr(report, "failed", False) or self.stopped.is_set():
                return
            logged = threading.Event()
            self.events.put(Reported(self.index, self.calls, logged))
            self.calls = []
        while not logged.wait(timeout=1.0):
            if self.stopped.is_set():
                return

    def finished(self, started: float, error: BaseException | None, worker: str) -> None:
        """The item is over on the thread named ``worker``."""
        with self.lock:
            if not self.abandoned:
                ended = clock.perf_counter()
                self.events.put(Finished(self.index, self.calls, started, ended, error, worker))

    def abandon(self) -> list[HookCall]:
        """Stop sending; the calls not sent yet, for the coordinator to log."""
        with self.lock:
            self.abandoned = True
            calls, self.calls = self.calls, []
        return calls


class RunningItem:
    """Everything a worker thread needs set while ``item`` runs on it: the context manager.

    Its report sink, ``current_item`` and its ``ItemContext``, set in that order and
    reset in the reverse one. A class, written out, rather than three generator
    context managers: this runs once per test, and they cost 15 calls more.
    """

    __slots__ = ("_context", "_item", "_reports", "_tokens")

    def __init__(self, item: pytest.Item, reports: ItemReports) -> None:
        self._item = item
        self._reports = reports

    def __enter__(self) -> None:
        sink_token = HOOK_SINK.set(self._reports)
        try:
            item_token = CURRENT_ITEM.set(self._item)
            try:
                self._context, context_token = open_item_context(self._item)
            except BaseException:
                CURRENT_ITEM.reset(item_token)
                raise
        except BaseException:
            HOOK_SINK.reset(sink_token)
            raise
        self._tokens = (sink_token, item_token, context_token)

    def __exit__(self, *exc_info: object) -> None:
        sink_token, item_token, context_token = self._tokens
        try:
            try:
                close_item_context(self._context, context_token)
            finally:
                CURRENT_ITEM.reset(item_token)
        finally:
            HOOK_SINK.reset(sink_token)
