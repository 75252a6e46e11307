"""Every use of pytest's and pluggy's private API, in one place, behind a version check.

Supported: pytest 8.4 to 9.x. Each private name used here is covered by the
test suite, which CI runs against the oldest and the newest supported pytest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from . import clock
from .pytest_version import check_pytest_version

check_pytest_version()  # before the first private name: an unsupported pytest gets our message

# Every private pytest name the plugin uses, imported after the version check above.
from _pytest import runner, setuponly, timing  # noqa: E402
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

# pytest >= 9: the "request" fixture is a FixtureDef made per request. On pytest 8.4
# the name is missing here too, and importing it from this module raises ImportError.
with contextlib.suppress(ImportError):
    from _pytest.fixtures import RequestFixtureDef

if TYPE_CHECKING:
    from .patching import Patches
    from .runtime.setup_tree import ConcurrentSetupState

InnerHookExec = Callable[[str, Sequence[Any], Mapping[str, object], bool], object]


# pytest-xdist (versions checked in ``pytest_version.check_xdist_version``): every
# name of its that it does not document.


def xdist_worker_output(config: pytest.Config) -> dict[str, Any]:
    """On an xdist worker, what goes back to the controller when the session ends."""
    workeroutput: dict[str, Any] = config.workeroutput  # type: ignore[attr-defined]
    return workeroutput


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


def set_stepwise_last_failed(config: pytest.Config, nodeid: str) -> bool:
    """Make ``--sw``'s next run start at ``nodeid``; False when stepwise is not active.

    pytest 8.4 and 9.x keep it in the stepwise plugin's ``cached_info.last_failed``,
    which the plugin writes to the cache when the session finishes.
    """
    plugin = config.pluginmanager.get_plugin("stepwiseplugin")
    info = getattr(plugin, "cached_info", None)
    if info is None or not hasattr(info, "last_failed"):
        return False
    info.last_failed = nodeid
    return True


def replace_setup_state(
    patches: Patches, session: pytest.Session, state: ConcurrentSetupState
) -> None:
    """Make ``state`` the session's setup state until ``patches`` are undone."""
    patches.setattr(session, "_setupstate", state)


def keep_pytest_timing_real(patches: Patches) -> None:
    """pytest's own clock (``_pytest.timing``) on the real clock until ``patches`` are undone.

    freezegun rewrites ``_pytest.timing.perf_counter``/``time`` while a test is
    frozen (they *are* the ``time`` functions); on one thread that is never read
    mid-freeze, but beside a pooled frozen test pytest would time the other tests,
    and its closing line once a frozen test is abandoned, on the fake clock.
    Our wrappers are not the ``time`` functions, so freezegun's scan passes them by,
    if it looks: it caches a module's time attributes until the module's names
    change (after a freeze earlier in the process, an in-process pytester run, say),
    so a name of ours is added too, and removed with the rest.
    """
    patches.setattr(timing, "perf_counter", clock.perf_counter)
    patches.setattr(timing, "time", clock.wall_time)
    patches.setattr(timing, "dynpool_real_clock", True)


def replace_terminal_file(patches: Patches, writer: TerminalWriter, file: Any) -> None:
    """Make ``writer`` write to ``file`` until ``patches`` are undone."""
    patches.setattr(writer, "_file", file)


def terminal_file(writer: TerminalWriter) -> Any:
    """The file ``writer`` writes to."""
    return writer._file


def global_capture_streams(capman: CaptureManager) -> tuple[Any, Any, Any]:
    """The session's capture streams: what ``sys.stdout``/``stderr``/``stdin`` are in a test."""
    capturing = capman._global_capturing
    if capturing is None:
        return None, None, None
    # fd capture of stdin puts its sys-level capture's stream into sys.stdin.
    stdin_capture = getattr(capturing.in_, "syscapture", capturing.in_)
    parts = (capturing.out, capturing.err, stdin_capture)
    streams = [getattr(part, "tmpfile", None) for part in parts]
    return streams[0], streams[1], streams[2]


def sys_capture_class_for(captureclass: type[Any]) -> type[Any]:
    """The ``sys``-level capture class that stands in for a file-descriptor one."""
    if issubclass(captureclass, FDCaptureBinary):
        return SysCaptureBinary
    if issubclass(captureclass, FDCapture):
        return SysCapture
    return captureclass


def inner_hookexec_of(pluginmanager: pytest.PytestPluginManager) -> InnerHookExec:
    """The function through which pluggy calls every hook (its tracing seam)."""
    return pluginmanager._inner_hookexec


def route_hook_calls(
    patches: Patches,
    pluginmanager: pytest.PytestPluginManager,
    names: Iterable[str],
    route: InnerHookExec,
) -> None:
    """Calls of the hooks ``names`` go through ``route``, until ``patches`` are undone.

    Each pluggy ``HookCaller`` calls its own ``_hookexec`` (the plugin manager's,
    which reaches ``_inner_hookexec``); the callers pytest makes for a directory's
    conftests (``FSHookProxy``, made anew at each ``item.ihook``) copy it when made.
    Patched on these hooks' callers only, the routing costs nothing to the other
    hook calls of a test (about 15 of 20).
    """
    for name in names:
        patches.setattr(getattr(pluginmanager.hook, name), "_hookexec", route)


def is_xdist_worker(config: pytest.Config) -> bool:
    """True in a pytest-xdist worker process (its controller writes the run's reports)."""
    return hasattr(config, "workerinput")


def xdist_worker_of(report: pytest.TestReport) -> str | None:
    """The xdist worker id (``gw0``) a report came from, on the controller; None elsewhere.

    xdist's worker adds ``worker_id`` to each serialized report, which pytest
    turns into an attribute when it rebuilds the report on the controller.
    """
    worker = getattr(report, "worker_id", None)
    return worker if isinstance(worker, str) else None


__all__ = [
    "CaptureFixture",
    "CaptureIO",
    "CaptureManager",
    "DoctestItem",
    "FixtureDef",
    "InnerHookExec",
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
    "XdistWorkerLink",
    "_LiveLoggingStreamHandler",
    "assertion_util",
    "check_pytest_version",
    "get_scope_node",
    "get_scope_package",
    "global_capture_streams",
    "inner_hookexec_of",
    "is_xdist_worker",
    "replace_setup_state",
    "replace_terminal_file",
    "route_hook_calls",
    "runner",
    "set_stepwise_last_failed",
    "setuponly",
    "sys_capture_class_for",
    "terminal_file",
    "thread_exceptions",
    "unraisable_exceptions",
    "xdist_check_same_collection",
    "xdist_worker_of",
    "xdist_worker_output",
]
