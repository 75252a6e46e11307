"""Every use of pytest's and pluggy's private API, in one place, behind a version check.

Supported: pytest 8.4 to 9.x. Each private name used here is covered by the
test suite, which CI runs against the oldest and the newest supported pytest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

MIN_PYTEST = (8, 4)
MAX_PYTEST_MAJOR = 9


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_pytest_version(version: str = pytest.__version__) -> None:
    """Refuse to run on a pytest whose internals we have not checked."""
    found = _version_tuple(version)
    if found < MIN_PYTEST or found[0] > MAX_PYTEST_MAJOR:
        raise pytest.UsageError(
            f"pytest-dynpool supports pytest >= {'.'.join(map(str, MIN_PYTEST))} and "
            f"< {MAX_PYTEST_MAJOR + 1}, found pytest {version}; install a supported "
            "pytest or disable the plugin with -p no:dynpool"
        )


# Every private pytest name the plugin uses, imported after the version check above.
from _pytest import runner, setuponly  # noqa: E402
from _pytest._io import TerminalWriter  # noqa: E402
from _pytest.assertion import util as assertion_util  # noqa: E402
from _pytest.capture import (  # noqa: E402
    CaptureFixture,
    CaptureIO,
    CaptureManager,
    FDCapture,
    FDCaptureBinary,
    MultiCapture,
    SysCapture,
    SysCaptureBinary,
    TeeCaptureIO,
)
from _pytest.doctest import DoctestItem  # noqa: E402
from _pytest.fixtures import FixtureDef, SubRequest, get_scope_node, get_scope_package  # noqa: E402
from _pytest.logging import (  # noqa: E402
    LogCaptureHandler,
    LoggingPlugin,
    _LiveLoggingStreamHandler,
)
from _pytest.nodes import Node  # noqa: E402
from _pytest.outcomes import OutcomeException  # noqa: E402
from _pytest.scope import Scope  # noqa: E402
from _pytest.threadexception import thread_exceptions  # noqa: E402
from _pytest.unraisableexception import unraisable_exceptions  # noqa: E402

if TYPE_CHECKING:
    from _pytest.fixtures import RequestFixtureDef

    from .runtime.setup_tree import ConcurrentSetupState


def replace_setup_state(session: pytest.Session, state: ConcurrentSetupState) -> None:
    """Make ``state`` the session's setup state until the session ends."""
    session._setupstate = state  # type: ignore[assignment]


def replace_terminal_file(writer: TerminalWriter, file: Any) -> Callable[[], None]:
    """Make ``writer`` write to ``file``; returns the undo."""
    original = writer._file
    writer._file = file

    def undo() -> None:
        writer._file = original

    return undo


def global_capture_streams(capman: CaptureManager) -> tuple[Any, Any]:
    """The session's capture streams: what ``sys.stdout``/``sys.stderr`` are in a test."""
    capturing = capman._global_capturing
    if capturing is None:
        return None, None
    streams = [getattr(part, "tmpfile", None) for part in (capturing.out, capturing.err)]
    return streams[0], streams[1]


def sys_capture_class_for(captureclass: type[Any]) -> type[Any]:
    """The ``sys``-level capture class that stands in for a file-descriptor one."""
    if issubclass(captureclass, FDCaptureBinary):
        return SysCaptureBinary
    if issubclass(captureclass, FDCapture):
        return SysCapture
    return captureclass


def xdist_is_active(config: pytest.Config) -> bool:
    """True under pytest-xdist, as controller (-n) or as a worker."""
    return hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", None))


def drop_report_hooks_from(
    pluginmanager: pytest.PytestPluginManager,
    threads: Collection[threading.Thread],
    routed_hooks: Collection[str],
) -> None:
    """From now on, report hooks called on ``threads`` reach no plugin.

    For worker threads left behind by a timeout: their item has been reported
    as failed already, and they may still run for the rest of the session.
    """
    original = pluginmanager._inner_hookexec

    def hookexec(
        name: str, methods: Sequence[Any], kwargs: Mapping[str, object], firstresult: bool
    ) -> object:
        if name in routed_hooks and threading.current_thread() in threads:
            return None if firstresult else []
        return original(name, methods, kwargs, firstresult)

    pluginmanager._inner_hookexec = hookexec  # type: ignore[assignment]


__all__ = [
    "CaptureFixture",
    "CaptureIO",
    "CaptureManager",
    "DoctestItem",
    "FixtureDef",
    "LogCaptureHandler",
    "LoggingPlugin",
    "MultiCapture",
    "Node",
    "OutcomeException",
    "RequestFixtureDef",
    "Scope",
    "SubRequest",
    "TeeCaptureIO",
    "TerminalWriter",
    "_LiveLoggingStreamHandler",
    "assertion_util",
    "check_pytest_version",
    "drop_report_hooks_from",
    "get_scope_node",
    "get_scope_package",
    "global_capture_streams",
    "replace_setup_state",
    "replace_terminal_file",
    "runner",
    "setuponly",
    "sys_capture_class_for",
    "thread_exceptions",
    "unraisable_exceptions",
    "xdist_is_active",
]
