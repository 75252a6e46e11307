"""Every use of pytest's and pluggy's private API, in one place, behind a version check.

Supported: pytest 8.4 to 9.x. Each private name used here is covered by the
test suite, which CI runs against the oldest and the newest supported pytest.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
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
from _pytest import runner  # noqa: E402
from _pytest.assertion import util as assertion_util  # noqa: E402
from _pytest.capture import (  # noqa: E402
    CaptureFixture,
    CaptureIO,
    CaptureManager,
    MultiCapture,
    TeeCaptureIO,
)
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


# pytest-xdist: supported versions, and every name of its we use that it does not document.
MIN_XDIST = (3, 6)
MAX_XDIST_MAJOR = 3


def xdist_worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """On an xdist worker, what its controller sent (``workerinput``); else None."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return workerinput


def xdist_worker_output(config: pytest.Config) -> dict[str, Any]:
    """On an xdist worker, what goes back to the controller when the session ends."""
    workeroutput: dict[str, Any] = config.workeroutput  # type: ignore[attr-defined]
    return workeroutput


def xdist_distributes(config: pytest.Config) -> bool:
    """True in the controller of a distributed run (``-n N`` with N >= 1, or ``--tx``)."""
    if xdist_worker_input(config) is not None:
        return False
    return bool(getattr(config.option, "numprocesses", None)) or bool(
        getattr(config.option, "tx", None)
    )


def check_xdist_version(version: str) -> str | None:
    """Why this pytest-xdist cannot run beside the pool, or None when it can."""
    found = _version_tuple(version)
    if found < MIN_XDIST or found[0] > MAX_XDIST_MAJOR:
        return (
            f"pytest-xdist {version} is not supported beside dynpool (supported: >= "
            f"{'.'.join(map(str, MIN_XDIST))}, < {MAX_XDIST_MAJOR + 1}); markers are ignored"
        )
    return None


class XdistWorkerLink:
    """The private side of xdist's ``WorkerInteractor`` that a pooled worker needs.

    xdist runs one item at a time and keeps the next one back; a worker that
    runs several at once takes over the loop: it reads every index the
    controller sends, stamps each report with its own item's index, and sends
    one ``runtest_protocol_complete`` per item.
    """

    def __init__(self, config: pytest.Config) -> None:
        # remote.py runs in the worker as execnet's source, not as ``xdist.remote``:
        # its classes are found by name, not by isinstance.
        found = [
            plugin
            for plugin in config.pluginmanager.get_plugins()
            if type(plugin).__name__ == "WorkerInteractor" and hasattr(plugin, "torun")
        ]
        if len(found) != 1:
            raise RuntimeError("pytest-dynpool: no xdist WorkerInteractor on this worker")
        self._interactor = found[0]

    def receive_all(self) -> list[int]:
        """Every item index the controller sends, until it says shutdown."""
        interactor = self._interactor
        # The module's globals: it is not importable under its name in the worker.
        shutdown = type(interactor).__init__.__globals__["Marker"].SHUTDOWN
        interactor.channel.setcallback(interactor.handle_command, endmarker=shutdown)
        indices: list[int] = []
        while (index := interactor.torun.get()) is not shutdown:
            assert isinstance(index, int)
            indices.append(index)
        return indices

    def stamp(self, index: int) -> None:
        """The next report sent belongs to the item at ``index`` of the session."""
        self._interactor.item_index = index

    def send_complete(self, index: int, duration: float) -> None:
        self._interactor.sendevent("runtest_protocol_complete", item_index=index, duration=duration)


def xdist_check_same_collection(scheduling: Any) -> bool:
    """``LoadScheduling``'s own check that every worker collected the same items."""
    same: bool = scheduling._check_nodes_have_same_collection()
    return same


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
    "XdistWorkerLink",
    "_LiveLoggingStreamHandler",
    "assertion_util",
    "check_pytest_version",
    "check_xdist_version",
    "drop_report_hooks_from",
    "get_scope_node",
    "get_scope_package",
    "replace_setup_state",
    "runner",
    "thread_exceptions",
    "unraisable_exceptions",
    "xdist_check_same_collection",
    "xdist_distributes",
    "xdist_worker_input",
    "xdist_worker_output",
]
