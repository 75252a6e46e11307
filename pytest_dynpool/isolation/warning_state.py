"""Warning filters and warning capture per pooled item, on Pythons without context-aware warnings.

``warnings.catch_warnings()`` (used by pytest for every test phase, by ``recwarn``,
``pytest.warns`` and ``filterwarnings`` marks) swaps three module globals:
``filters``, ``showwarning`` and ``_showwarnmsg_impl``. Before Python 3.14 those
are process-wide, so one test's ``error::`` filter would fail another test, and
one test's recorder would collect another's warnings.

The design: the C implementation of ``warnings.warn`` reads ``filters`` and
``_showwarnmsg`` by *attribute lookup* on the ``warnings`` module each time, and
``catch_warnings`` swaps them by attribute assignment, while the module's own
Python functions (``filterwarnings``, ``simplefilter``, ``resetwarnings``, the
default ``_showwarnmsg``) use the module *dict*. So, for the pool's duration:

- the module's class gets properties for the three names that read and write
  the running item's ``ItemContext`` (or the process state outside any item);
- the dict's ``filters`` becomes a list whose methods act on that same list, so
  ``filterwarnings()`` edits the item's filters;
- the dict's ``_showwarnmsg`` looks up ``showwarning``/``_showwarnmsg_impl`` in
  the item's context too.

``__warningregistry__`` (the "already shown once" memory) stays per module, as
in CPython; the filters version is bumped whenever another context warns, so one
test's "default"/"once" bookkeeping never hides a warning from another test. The
price: a test may see one "default" warning twice, where plain pytest shows it
once, when another test warned between the two.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex

from ..patching import Patches
from .item_context import (
    ITEM_CONTEXT,
    PROCESS_WARNINGS,
    ItemContext,
    ProcessWarnings,
    active_context,
)

_last_warner: list[object] = [None]


# Whose warning state applies here is ``active_context() or PROCESS_WARNINGS``: the
# running item's, or the process's. It is written out at each use rather than in a
# helper because ``warnings.warn`` and ``catch_warnings`` ask for it several times per
# test phase (an ItemContext is always true).


def _current_filters() -> list[Any]:
    context = ITEM_CONTEXT.get()
    if context is None or context.closed:
        context = active_context()
    holder: ItemContext | ProcessWarnings = context or PROCESS_WARNINGS
    if _last_warner[0] is not holder:
        _last_warner[0] = holder
        warnings._filters_mutated()  # type: ignore[attr-defined]
    return holder.warning_filters


class _InContext:
    """A ``warnings`` global whose value is the running context's (``warning_hooks``)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, module: object, owner: type | None = None) -> Any:
        context = ITEM_CONTEXT.get()
        if context is None or context.closed:
            context = active_context()
        return (context or PROCESS_WARNINGS).warning_hooks[self._name]

    def __set__(self, module: object, value: Any) -> None:
        context = ITEM_CONTEXT.get()
        if context is None or context.closed:
            context = active_context()
        (context or PROCESS_WARNINGS).warning_hooks[self._name] = value


class _ContextWarningsModule(types.ModuleType):
    """The ``warnings`` module whose three swapped globals are the running context's."""

    @property
    def filters(self) -> list[Any]:
        return _current_filters()

    @filters.setter
    def filters(self, value: list[Any]) -> None:
        context = ITEM_CONTEXT.get()
        if context is None or context.closed:
            context = active_context()
        (context or PROCESS_WARNINGS).warning_filters = value

    showwarning = _InContext("showwarning")
    _showwarnmsg_impl = _InContext("_showwarnmsg_impl")


class _FiltersOfContext(list):  # type: ignore[type-arg]
    """``warnings.filters`` as the module's own functions see it: the context's list."""

    def __contains__(self, value: object) -> bool:
        return value in _current_filters()

    def __delitem__(self, key: Any) -> None:
        del _current_filters()[key]

    def __eq__(self, other: object) -> bool:
        return _current_filters() == other

    def __getitem__(self, key: Any) -> Any:
        return _current_filters()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(_current_filters())

    def __len__(self) -> int:
        return len(_current_filters())

    def __repr__(self) -> str:
        return repr(_current_filters())

    def __reversed__(self) -> Iterator[Any]:
        return iter(reversed(_current_filters()))

    def __setitem__(self, key: Any, value: Any) -> None:
        _current_filters()[key] = value

    def __bool__(self) -> bool:
        return bool(_current_filters())

    def append(self, value: Any) -> None:
        _current_filters().append(value)

    def clear(self) -> None:
        _current_filters().clear()

    def copy(self) -> list[Any]:
        return _current_filters().copy()

    def count(self, value: Any) -> int:
        return _current_filters().count(value)

    def extend(self, values: Iterable[Any]) -> None:
        _current_filters().extend(values)

    def index(self, value: Any, *bounds: SupportsIndex) -> int:
        return _current_filters().index(value, *bounds)

    def insert(self, index: SupportsIndex, value: Any) -> None:
        _current_filters().insert(index, value)

    def pop(self, index: SupportsIndex = -1) -> Any:
        return _current_filters().pop(index)

    def remove(self, value: Any) -> None:
        _current_filters().remove(value)

    __hash__ = None


def _showwarnmsg(msg: warnings.WarningMessage) -> None:
    """``warnings._showwarnmsg`` with the running context's hooks."""
    holder: ItemContext | ProcessWarnings = active_context() or PROCESS_WARNINGS
    showwarning = holder.warning_hooks["showwarning"]
    if showwarning is not warnings._showwarning_orig:  # type: ignore[attr-defined]
        if not callable(showwarning):
            raise TypeError("warnings.showwarning() must be set to a function or method")
        showwarning(msg.message, msg.category, msg.filename, msg.lineno, msg.file, msg.line)
        return
    holder.warning_hooks["_showwarnmsg_impl"](msg)


def _forget_last_warner() -> None:
    warnings._filters_mutated()  # type: ignore[attr-defined]
    _last_warner[0] = None


def warnings_per_item(patches: Patches) -> None:
    """Install the per-context warning state until ``patches`` are undone."""
    if getattr(sys.flags, "context_aware_warnings", False):
        return  # Python 3.14+: catch_warnings is already per context
    module = sys.modules["warnings"]
    namespace = vars(module)
    PROCESS_WARNINGS.warning_filters = namespace["filters"]
    PROCESS_WARNINGS.warning_hooks = {
        "showwarning": namespace["showwarning"],
        "_showwarnmsg_impl": namespace["_showwarnmsg_impl"],
    }
    patches.callback(_forget_last_warner)
    # Set in the module's dict while its class is still its own; undone after the class.
    patches.setattr(module, "filters", _FiltersOfContext())
    patches.setattr(module, "_showwarnmsg", _showwarnmsg)
    patches.set_class(module, _ContextWarningsModule)
