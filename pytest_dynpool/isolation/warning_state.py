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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .item_context import PROCESS_WARNINGS, active_context

_last_warner: list[object] = [None]


def _current_filters() -> list[Any]:
    context = active_context()
    holder: object = PROCESS_WARNINGS if context is None else context
    if _last_warner[0] is not holder:
        _last_warner[0] = holder
        warnings._filters_mutated()  # type: ignore[attr-defined]
    return PROCESS_WARNINGS.filters if context is None else context.warning_filters


# ProcessWarnings attribute -> ItemContext attribute
_CONTEXT_NAMES = {
    "filters": "warning_filters",
    "showwarning": "showwarning",
    "showwarnmsg_impl": "showwarnmsg_impl",
}


def _holder_and_name(name: str) -> tuple[object, str]:
    context = active_context()
    return (PROCESS_WARNINGS, name) if context is None else (context, _CONTEXT_NAMES[name])


def _current(name: str) -> Any:
    holder, attribute = _holder_and_name(name)
    return getattr(holder, attribute)


def _per_context(name: str) -> property:
    def set_(module: types.ModuleType, value: Any) -> None:
        holder, attribute = _holder_and_name(name)
        setattr(holder, attribute, value)

    return property(lambda module: _current(name), set_)


class _ContextWarningsModule(types.ModuleType):
    filters = property(lambda module: _current_filters(), _per_context("filters").fset)
    showwarning = _per_context("showwarning")
    _showwarnmsg_impl = _per_context("showwarnmsg_impl")


def _delegate(name: str) -> Any:
    def method(self: _FiltersOfContext, *args: Any, **kwargs: Any) -> Any:
        return getattr(_current_filters(), name)(*args, **kwargs)

    method.__name__ = name
    return method


class _FiltersOfContext(list):  # type: ignore[type-arg]
    """``warnings.filters`` as the module's own functions see it: the context's list."""

    for _name in (
        "__contains__", "__delitem__", "__eq__", "__getitem__", "__iter__", "__len__",
        "__repr__", "__reversed__", "__setitem__", "append", "clear", "copy", "count",
        "extend", "index", "insert", "pop", "remove",
    ):  # fmt: skip
        locals()[_name] = _delegate(_name)
    del _name

    def __bool__(self) -> bool:
        return bool(_current_filters())

    __hash__ = None


def _showwarnmsg(msg: warnings.WarningMessage) -> None:
    """``warnings._showwarnmsg`` with the running context's hooks."""
    showwarning = _current("showwarning")
    if showwarning is not warnings._showwarning_orig:  # type: ignore[attr-defined]
        if not callable(showwarning):
            raise TypeError("warnings.showwarning() must be set to a function or method")
        showwarning(msg.message, msg.category, msg.filename, msg.lineno, msg.file, msg.line)
        return
    _current("showwarnmsg_impl")(msg)


@contextmanager
def warnings_per_item() -> Iterator[None]:
    """Install the per-context warning state for the pool; restore the process's after."""
    module = sys.modules["warnings"]
    if getattr(sys.flags, "context_aware_warnings", False):
        yield  # Python 3.14+: catch_warnings is already per context
        return
    namespace = vars(module)
    saved = {name: namespace[name] for name in ("filters", "showwarning", "_showwarnmsg_impl")}
    saved_showwarnmsg = namespace["_showwarnmsg"]
    PROCESS_WARNINGS.filters = saved["filters"]
    PROCESS_WARNINGS.showwarning = saved["showwarning"]
    PROCESS_WARNINGS.showwarnmsg_impl = saved["_showwarnmsg_impl"]
    namespace["filters"] = _FiltersOfContext()
    namespace["_showwarnmsg"] = _showwarnmsg
    module.__class__ = _ContextWarningsModule
    try:
        yield
    finally:
        module.__class__ = types.ModuleType
        namespace["filters"] = PROCESS_WARNINGS.filters
        namespace["showwarning"] = PROCESS_WARNINGS.showwarning
        namespace["_showwarnmsg_impl"] = PROCESS_WARNINGS.showwarnmsg_impl
        namespace["_showwarnmsg"] = saved_showwarnmsg
        warnings._filters_mutated()  # type: ignore[attr-defined]
        _last_warner[0] = None
