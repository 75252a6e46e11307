"""Fixture values per scope instance, so that items in flight never share state wrongly.

pytest keeps a fixture's value and finalizers on the ``FixtureDef``, which is
shared by every item: two items in flight would see each other's function
fixtures, and two parameter values of a module fixture would tear each other
down. While a dynpool run is active, ``FixtureDef.cached_result`` and
``FixtureDef._finalizers`` become views into a ``FixtureStore`` keyed by the
*scope instance* the current item needs:

    (fixturedef, item)                         for function scope
    (fixturedef, scope node, parameter values) for wider scopes

The current item travels in a ``ContextVar``; ``execute`` and ``finish`` set it
from their request, so a finalizer run by another item's teardown still finds
the instance it belongs to. Creation of a wider-scoped instance holds a lock
per instance: fixtures depend only on equal or wider scopes, along a DAG, so
these locks are always taken in one order and cannot deadlock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import pytest

from ..isolation.item_context import IN_WIDER_FIXTURE
from ..patching import Patches, Undo, patch_attribute
from ..pytest_compat import FixtureDef, Scope, SubRequest, get_scope_node, get_scope_package

try:  # pytest >= 9: the "request" fixture is a FixtureDef subclass
    from ..pytest_compat import RequestFixtureDef
except ImportError:  # pragma: no cover - pytest 8.4
    RequestFixtureDef = None  # type: ignore[assignment,misc]

CURRENT_ITEM: ContextVar[pytest.Item | None] = ContextVar("dynpool_current_item", default=None)
FIXTURE_STORE_KEY = pytest.StashKey["FixtureStore"]()


@contextmanager
def current_item(item: pytest.Item) -> Iterator[None]:
    """Mark ``item`` as the item whose fixtures this thread is working with."""
    token = CURRENT_ITEM.set(item)
    try:
        yield
    finally:
        CURRENT_ITEM.reset(token)


class FixtureInstance:
    """One live value of a fixture, with its own finalizers and creation lock.

    ``attributes`` holds what pytest keeps on the ``FixtureDef`` under the same
    names (``cached_result``, ``_finalizers``), for this instance only.
    """

    __slots__ = ("attributes", "lock")

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}
        self.lock = threading.RLock()


def _hashable(value: object) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return ("dynpool-unhashable", id(value))
    return value


class FixtureStore:
    """The fixture instances of one session."""

    def __init__(self) -> None:
        self._instances: dict[Hashable, FixtureInstance] = {}
        self._lock = threading.Lock()
        self._param_names: dict[tuple[FixtureDef[Any], int], tuple[str, ...]] = {}

    def key(self, fixturedef: FixtureDef[Any], item: pytest.Item) -> Hashable:
        """The scope instance ``item`` uses, derived exactly like ``SubRequest.node``."""
        callspec = getattr(item, "callspec", None)
        scope = fixturedef._scope
        if callspec is not None and fixturedef.argname in callspec.params:
            scope = callspec._arg2scope[fixturedef.argname]
        if scope is Scope.Function:
            return (fixturedef, item)
        if scope is Scope.Package:
            node = get_scope_package(item, fixturedef)
        else:
            node = get_scope_node(item, scope)
        if node is None:
            node = item
        if callspec is None or not callspec.params:
            return (fixturedef, node, ())
        params = tuple(
            (name, _hashable(callspec.params[name]))
            for name in self._parametrizing_names(fixturedef, item)
            if name in callspec.params
        )
        return (fixturedef, node, params)

    def _parametrizing_names(
        self, fixturedef: FixtureDef[Any], item: pytest.Item
    ) -> tuple[str, ...]:
        """Names whose parameter can change this fixture's value: itself and its dependencies."""
        fixtureinfo = getattr(item, "_fixtureinfo", None)
        cache_key = (fixturedef, id(fixtureinfo))
        names = self._param_names.get(cache_key)
        if names is None:
            name2defs = fixtureinfo.name2fixturedefs if fixtureinfo is not None else {}
            seen = {fixturedef.argname}
            todo = list(fixturedef.argnames)
            while todo:
                name = todo.pop()
                if name in seen:
                    continue
                seen.add(name)
                for definition in name2defs.get(name, ()):
                    todo.extend(definition.argnames)
            names = self._param_names[cache_key] = tuple(sorted(seen))
        return names

    def __len__(self) -> int:
        """Fixture instances alive: with a value cached or a finalizer left."""
        return len(self._instances)

    def find(self, key: Hashable) -> FixtureInstance | None:
        return self._instances.get(key)

    def get_or_create(self, key: Hashable) -> FixtureInstance:
        instance = self._instances.get(key)
        if instance is None:
            with self._lock:
                instance = self._instances.setdefault(key, FixtureInstance())
        return instance

    def discard_if_finished(self, key: Hashable) -> None:
        with self._lock:
            instance = self._instances.get(key)
            if instance is not None and not any(instance.attributes.values()):
                del self._instances[key]  # no value cached, no finalizer left


def _store_for(item: pytest.Item | None) -> FixtureStore | None:
    if item is None:
        return None
    return item.config.stash.get(FIXTURE_STORE_KEY, None)


class _PerScopeInstance:
    """A ``FixtureDef`` attribute kept per scope instance while the store is installed.

    Outside a pooled item, or for ``per_instance=False``, it is a plain
    attribute of the definition. ``default`` makes a value on first read
    (pytest's ``_finalizers`` list).
    """

    def __init__(
        self, name: str, default: Callable[[], Any] | None, *, per_instance: bool = True
    ) -> None:
        self._name = name
        self._default = default
        self._per_instance = per_instance

    def _attributes(self, fixturedef: FixtureDef[Any], create: bool) -> dict[str, Any] | None:
        item = CURRENT_ITEM.get() if self._per_instance else None
        if item is None:
            return fixturedef.__dict__
        store = item.config.stash.get(FIXTURE_STORE_KEY, None)
        if store is None:
            return fixturedef.__dict__
        key = store.key(fixturedef, item)
        instance = store.get_or_create(key) if create else store.find(key)
        return None if instance is None else instance.attributes

    def __get__(self, fixturedef: FixtureDef[Any] | None, owner: type | None = None) -> Any:
        if fixturedef is None:
            return self
        attributes = self._attributes(fixturedef, create=self._default is not None)
        if attributes is None:
            return None
        if self._default is None:
            return attributes.get(self._name)
        return attributes.setdefault(self._name, self._default())

    def __set__(self, fixturedef: FixtureDef[Any], value: Any) -> None:
        attributes = self._attributes(fixturedef, create=True)
        assert attributes is not None
        attributes[self._name] = value


class _SwappedPerThread:
    """A ``FixtureDef`` attribute that a plugin swaps around a setup, kept per thread.

    pytest-asyncio swaps ``func`` for the setup of an async fixture, anyio swaps
    ``func`` and ``argnames``; on a shared definition another thread would call
    the swapped function (bound to the first thread's event loop), or the original
    with the swapped arguments. The value given in ``__init__`` is the shared one;
    a later assignment holds for its thread until it assigns the shared one back.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._swapped = threading.local()

    def _overrides(self) -> dict[int, Any]:
        overrides: dict[int, Any] = self._swapped.__dict__.setdefault("by_id", {})
        return overrides

    def __get__(self, fixturedef: FixtureDef[Any] | None, owner: type | None = None) -> Any:
        if fixturedef is None:
            return self
        overrides = self._overrides()
        if id(fixturedef) in overrides:
            return overrides[id(fixturedef)]
        try:
            return fixturedef.__dict__[self._name]
        except KeyError:
            raise AttributeError(self._name) from None

    def __set__(self, fixturedef: FixtureDef[Any], value: Any) -> None:
        shared = fixturedef.__dict__
        if self._name not in shared:
            shared[self._name] = value  # FixtureDef.__init__
        elif value is shared[self._name]:
            self._overrides().pop(id(fixturedef), None)
        else:
            self._overrides()[id(fixturedef)] = value


_original_execute = FixtureDef.execute
_original_finish = FixtureDef.finish


def _execute(self: FixtureDef[Any], request: SubRequest) -> Any:
    __tracebackhide__ = True
    item = request._pyfuncitem
    store = _store_for(item)
    if store is None:
        return _original_execute(self, request)
    # What ``current_item(item)`` does, written out: this runs for every fixture of
    # every item, and a generator context manager costs five calls more.
    token = CURRENT_ITEM.set(item)
    try:
        if request._scope is Scope.Function:
            return _original_execute(self, request)
        with store.get_or_create(store.key(self, item)).lock, _in_wider_fixture():
            return _original_execute(self, request)
    finally:
        CURRENT_ITEM.reset(token)


def _finish(self: FixtureDef[Any], request: SubRequest) -> None:
    __tracebackhide__ = True
    item = request._pyfuncitem
    store = _store_for(item)
    if store is None:
        _original_finish(self, request)
        return
    # ``current_item(item)`` and ``_in_wider_fixture(...)``, written out as in ``_execute``.
    item_token = CURRENT_ITEM.set(item)
    wider_token = IN_WIDER_FIXTURE.set(request._scope is not Scope.Function)
    try:
        key = store.key(self, item)
        try:
            _original_finish(self, request)
        finally:
            store.discard_if_finished(key)
    finally:
        IN_WIDER_FIXTURE.reset(wider_token)
        CURRENT_ITEM.reset(item_token)


@contextmanager
def _in_wider_fixture(wider: bool = True) -> Iterator[None]:
    """What a wider fixture does (logger levels, threads) belongs to its scope, not the item."""
    token = IN_WIDER_FIXTURE.set(wider)
    try:
        yield
    finally:
        IN_WIDER_FIXTURE.reset(token)


_install_lock = threading.Lock()
_install_count = 0
_undo_class_patches: list[Undo] = []


def _class_patches() -> list[tuple[type, dict[str, object]]]:
    patches: list[tuple[type, dict[str, object]]] = [
        (
            FixtureDef,
            {
                "cached_result": _PerScopeInstance("cached_result", None),
                "_finalizers": _PerScopeInstance("_finalizers", list),
                "func": _SwappedPerThread("func"),
                "argnames": _SwappedPerThread("argnames"),
                "execute": _execute,
                "finish": _finish,
            },
        )
    ]
    if RequestFixtureDef is not None:
        # The "request" pseudo-fixture keeps its value on itself, as before.
        plain: dict[str, object] = {
            "cached_result": _PerScopeInstance("cached_result", None, per_instance=False),
            "_finalizers": _PerScopeInstance("_finalizers", list, per_instance=False),
        }
        patches.append((RequestFixtureDef, plain))
    return patches


def install_fixture_store(patches: Patches, session: pytest.Session) -> FixtureStore:
    """Route fixture state of ``session`` through a new store until ``patches`` are undone.

    Nestable (pytester runs inside a pooled test, even on two workers at once):
    the first install patches pytest's classes, the last undo restores them.
    """
    global _install_count
    store = FixtureStore()
    session.config.stash[FIXTURE_STORE_KEY] = store
    patches.callback(session.config.stash.__delitem__, FIXTURE_STORE_KEY)
    with _install_lock:
        if _install_count == 0:
            for cls, attributes in _class_patches():
                for name, value in attributes.items():
                    _undo_class_patches.append(patch_attribute(cls, name, value))
        _install_count += 1
    patches.callback(_uninstall)
    return store


def _uninstall() -> None:
    global _install_count
    with _install_lock:
        _install_count -= 1
        if _install_count:
            return
        while _undo_class_patches:
            _undo_class_patches.pop()()
