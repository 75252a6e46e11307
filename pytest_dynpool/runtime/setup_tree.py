"""A ``SetupState`` for items in flight at once: a reference-counted tree, not a stack.

pytest's ``SetupState`` is a stack that asserts the previous item was torn down
before the next one is set up. Here each collector (session, package, module,
class) is set up once, by whichever item reaches it first, and torn down by the
item that releases it last; an item knows which item it is from the
``CURRENT_ITEM`` context. ``teardown_exact(None)`` outside any item (pytest's
``pytest_sessionfinish``) tears down whatever is still active, innermost first.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pytest

from .. import clock
from ..pytest_compat import Node, OutcomeException
from .fixture_store import CURRENT_ITEM

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

TEST_OUTCOME = (OutcomeException, Exception)
Finalizer = Callable[[], object]


@dataclass(slots=True)  # one per item in flight, and per collector
class _NodeState:
    finalizers: list[Finalizer]
    error: tuple[BaseException, types.TracebackType | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: bool = False


class _ActiveView:
    """``node in setupstate.stack``: what pytest >= 9.1 asks of the stack."""

    def __init__(self, owner: ConcurrentSetupState) -> None:
        self._owner = owner

    def __contains__(self, node: object) -> bool:
        return node in self._owner._active

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self._owner._active))

    def __len__(self) -> int:
        return len(self._owner._active)


class ConcurrentSetupState:
    """Drop-in for ``session._setupstate`` while items run concurrently."""

    def __init__(self, items: Iterable[pytest.Item], is_stopping: Callable[[], bool]) -> None:
        self._lock = threading.Lock()
        self._active: dict[Node, _NodeState] = {}
        self._users: dict[Node, int] = {}
        self._expected = 0
        self._is_stopping = is_stopping
        # Chains are computed once, here on the main thread, not per phase on workers.
        self._chains: dict[pytest.Item, list[Node]] = {}
        for item in items:
            chain = self._chains[item] = item.listchain()
            for node in chain[:-1]:
                self._users[node] = self._users.get(node, 0) + 1
        self.stack = _ActiveView(self)
        # Teardown errors of collectors released by a dropped item (see ``drop``).
        self._late_errors: list[BaseException] = []
        self._held_session: Node | None = None
        self.session_teardown: tuple[pytest.Item, float] | None = None
        """The item whose teardown tore the session down, and the seconds that took: no
        schedule ends before it, after every item (``bounds``)."""

    def is_node_active(self, node: Node) -> bool:
        return node in self._active

    def expect(self, item: pytest.Item) -> None:
        """Count ``item`` as in flight from dispatch until its teardown."""
        with self._lock:
            self._expected += 1

    def adopt(self, item: pytest.Item) -> None:
        """``item`` joins the run (stolen from another xdist worker): its collectors'
        users count it, and one torn down already is set up again, as pytest does
        for a module whose items are not contiguous."""
        chain = item.listchain()
        with self._lock:
            self._chains[item] = chain
            for node in chain[:-1]:
                self._users[node] = self._users.get(node, 0) + 1

    def hold_session(self, session: Node) -> None:
        """One more user of the session, so that its fixtures outlive this worker's own items
        while it may still steal (``release_session`` when nothing is left to steal)."""
        with self._lock:
            self._users[session] = self._users.get(session, 0) + 1
        self._held_session = session

    def release_session(self) -> None:
        """Give up ``hold_session``'s use: the session ends with its last item, as in pytest."""
        session = self._held_session
        if session is not None:
            self._held_session = None
            self._release([session])

    def drop(self, item: pytest.Item) -> None:
        """``item`` leaves the run unrun (another xdist worker started it): as if finished.

        A collector it was the last user of is torn down now; an error there is
        raised at the session's end (``teardown_exact(None)``), with no item to carry it.
        """
        self._release(list(reversed(self._chain(item)[:-1])))

    def _release(self, nodes: list[Node]) -> None:
        """One use less of each of ``nodes`` (innermost first); tear down those unused now."""
        released = []
        with self._lock:
            for node in nodes:
                self._users[node] -= 1
                state = self._active.pop(node, None) if self._users[node] == 0 else None
                if state is not None:
                    released.append((node, state))
        exceptions: list[BaseException] = []
        for node, state in released:
            self._run_finalizers(node, state, exceptions)
        with self._lock:
            self._late_errors.extend(exceptions)

    def _chain(self, item: pytest.Item) -> list[Node]:
        chain = self._chains.get(item)
        return item.listchain() if chain is None else chain

    def setup(self, item: pytest.Item) -> None:
        __tracebackhide__ = True
        for collector in self._chain(item)[:-1]:
            self._setup_collector(collector)
        state = _NodeState(finalizers=[item.teardown], ready=True)
        with self._lock:
            self._active[item] = state
        item.setup()

    def _setup_collector(self, collector: Node) -> None:
        __tracebackhide__ = True
        state = self._active.get(collector)
        if state is None or not state.ready:
            with self._lock:
                state = self._active.get(collector)
                if state is None:
                    state = self._active[collector] = _NodeState(finalizers=[collector.teardown])
        if not state.ready:
            with state.lock:
                if not state.ready:
                    try:
                        collector.setup()
                    except TEST_OUTCOME as exc:
                        state.error = (exc, exc.__traceback__)
                    finally:
                        state.ready = True  # only now may others pass without the lock
        if state.error is not None:
            # Like pytest: a failed collector fails its whole subtree with one exception.
            raise state.error[0].with_traceback(state.error[1])

    def addfinalizer(self, finalizer: Finalizer, node: Node) -> None:
        assert callable(finalizer)
        state = self._active.get(node)
        assert state is not None, (node, "is not set up")
        state.finalizers.append(finalizer)

    def teardown_exact(self, nextitem: pytest.Item | None) -> None:
        """Tear down the current item and every collector it was the last user of."""
        __tracebackhide__ = True
        item = CURRENT_ITEM.get()
        if item is None:
            with self._lock:
                late, self._late_errors = self._late_errors, []
            self._teardown_nodes(self._pop_all(), late)
            return
        exceptions: list[BaseException] = []
        with self._lock:
            state = self._active.pop(item, None)
        if state is not None:
            self._run_finalizers(item, state, exceptions)
        # One level at a time: a parent's count drops only after this thread has
        # torn down the child it released, so that the thread releasing the parent
        # never tears it down under a child still being torn down elsewhere.
        # Its chain is dropped here: kept for the whole session, 10,000 items' chains
        # only lengthen every full garbage collection (they are rebuilt if it runs again).
        chain = self._chains.pop(item, None)
        for node in reversed((item.listchain() if chain is None else chain)[:-1]):
            with self._lock:
                self._users[node] -= 1
                released = self._active.pop(node, None) if self._users[node] == 0 else None
            if released is not None:
                self._tear_down(item, node, released, exceptions)
        with self._lock:
            self._expected -= 1
            rest = self._pop_all_locked() if self._expected == 0 and self._is_stopping() else []
        # -x / Ctrl-C: the last item in flight tears everything down, as pytest
        # does for the item that stops the session.
        for node, node_state in rest:
            self._tear_down(item, node, node_state, exceptions)
        _raise_collected(exceptions)

    def _tear_down(
        self, item: pytest.Item, node: Node, state: _NodeState, exceptions: list[BaseException]
    ) -> None:
        """``_run_finalizers`` inside ``item``'s teardown, timing the session's."""
        __tracebackhide__ = True
        if not isinstance(node, pytest.Session):
            self._run_finalizers(node, state, exceptions)
            return
        started = clock.perf_counter()
        try:
            self._run_finalizers(node, state, exceptions)
        finally:
            self.session_teardown = (item, clock.perf_counter() - started)

    def _pop_all(self) -> list[tuple[Node, _NodeState]]:
        with self._lock:
            return self._pop_all_locked()

    def _pop_all_locked(self) -> list[tuple[Node, _NodeState]]:
        popped = list(reversed(self._active.items()))
        self._active.clear()
        return popped

    def _teardown_nodes(
        self, nodes: list[tuple[Node, _NodeState]], late: list[BaseException]
    ) -> None:
        __tracebackhide__ = True
        exceptions: list[BaseException] = list(late)
        for node, state in nodes:
            self._run_finalizers(node, state, exceptions)
        _raise_collected(exceptions)

    @staticmethod
    def _run_finalizers(node: Node, state: _NodeState, exceptions: list[BaseException]) -> None:
        __tracebackhide__ = True
        these_exceptions = []
        while state.finalizers:
            finalizer = state.finalizers.pop()
            try:
                finalizer()
            except TEST_OUTCOME as exc:
                these_exceptions.append(exc)
        if len(these_exceptions) == 1:
            exceptions.extend(these_exceptions)
        elif these_exceptions:
            msg = f"errors while tearing down {node!r}"
            exceptions.append(BaseExceptionGroup(msg, these_exceptions[::-1]))


def _raise_collected(exceptions: list[BaseException]) -> None:
    """Raise like pytest's ``SetupState.teardown_exact``: one error as is, several grouped."""
    __tracebackhide__ = True
    if len(exceptions) == 1:
        raise exceptions[0]
    if exceptions:
        raise BaseExceptionGroup("errors during test teardown", exceptions[::-1])
