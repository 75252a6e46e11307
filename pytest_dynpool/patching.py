"""The one way to patch pytest, pluggy, the standard library or another plugin, and undo it.

Modelled on pluggy's ``PluginManager.add_hookcall_monitoring``: a patch saves the
exact object it replaces (or that there was none) and its undo puts that object
back, nothing else. Patches made for one pooled phase go on one ``Patches``
stack and are undone together, in reverse order, however the phase ends.

Every patch is also recorded here, so that the test suite can check after each
run that no name still holds a value a patch put there (``unrestored``).
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from contextlib import ExitStack

Undo = Callable[[], None]
_MISSING = object()

_lock = threading.Lock()
_live = 0
# Every patch since the last time none was live: (owner, name, the value we set).
_made: list[tuple[object, str, object]] = []


def _is_slot(owner: object, name: str) -> bool:
    """An instance attribute kept in a ``__slots__`` slot (pluggy's ``HookCaller``), not a dict."""
    return not isinstance(owner, type) and isinstance(
        getattr(type(owner), name, None), types.MemberDescriptorType
    )


def _found(owner: object, name: str) -> object:
    """What ``owner`` itself holds under ``name`` (not what it inherits)."""
    if name == "__class__":
        return type(owner)
    if _is_slot(owner, name):
        return getattr(owner, name, _MISSING)
    return vars(owner).get(name, _MISSING)


def _put(owner: object, name: str, value: object) -> None:
    if value is not _MISSING:
        setattr(owner, name, value)
    elif _is_slot(owner, name):
        if hasattr(owner, name):
            delattr(owner, name)
    elif name in vars(owner):
        delattr(owner, name)


def patch_attribute(
    owner: object, name: str, value: object, *, if_still_ours: bool = False
) -> Undo:
    """Set ``owner.name`` (a module, class or instance attribute, or ``__class__``).

    The returned undo restores exactly what ``owner`` held before, or removes
    the name if it held nothing of its own; calling it twice is harmless. With
    ``if_still_ours``, an undo that runs late leaves alone a name that someone
    has set again since (pluggy's own undo of a monitoring wrapper, say).
    """
    global _live
    found = _found(owner, name)
    with _lock:
        if _live == 0:
            _made.clear()
        _made.append((owner, name, value))
        _live += 1
    setattr(owner, name, value)
    done = False

    def undo() -> None:
        global _live
        nonlocal done
        if done:
            return
        done = True
        if not if_still_ours or _found(owner, name) is value:
            _put(owner, name, found)
        with _lock:
            _live -= 1

    return undo


class Patches(ExitStack):
    """Patches undone together in reverse order when the stack closes."""

    def setattr(self, owner: object, name: str, value: object) -> None:
        """``patch_attribute``, undone when this stack closes."""
        self.callback(patch_attribute(owner, name, value))

    def set_class(self, instance: object, cls: type) -> None:
        """Give ``instance`` another class (a subclass that adds thread safety)."""
        self.callback(patch_attribute(instance, "__class__", cls))


def live_patches() -> int:
    """How many patches are in place now."""
    with _lock:
        return _live


def unrestored() -> list[str]:
    """Names that still hold a value a patch put there; empty when every undo has run.

    Only meaningful when no patch is live (``live_patches() == 0``).
    """
    with _lock:
        made = list(_made)
    return [f"{owner!r}.{name}" for owner, name, value in made if _found(owner, name) is value]
