"""Every use of pytest's and pluggy's private API, in one place, behind a version check.

Supported: pytest 8.4 to 9.x. Each private name used here is covered by the
test suite, which CI runs against the oldest and the newest supported pytest.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

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


from .anyio_runner import anyio_runner_per_thread  # noqa: E402
from .fixtures import (  # noqa: E402 - the version check is importable on any pytest
    CURRENT_ITEM,
    FixtureStore,
    current_item,
    install_fixture_store,
    uninstall_fixture_store,
)
from .item_context import HOOK_SINK, HookCall, item_context  # noqa: E402
from .runtime import (  # noqa: E402
    ROUTED_HOOKS,
    HookRouter,
    OutsideTests,
    dots_only_progress,
    thread_safe_runtime,
)
from .setupstate import ConcurrentSetupState  # noqa: E402


def replace_setup_state(session: pytest.Session, state: ConcurrentSetupState) -> None:
    """Make ``state`` the session's setup state until the session ends."""
    session._setupstate = state  # type: ignore[assignment]


def xdist_is_active(config: pytest.Config) -> bool:
    """True under pytest-xdist, as controller (-n) or as a worker."""
    return hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", None))


def drop_report_hooks_from(
    pluginmanager: pytest.PytestPluginManager, threads: Collection[threading.Thread]
) -> None:
    """From now on, report hooks called on ``threads`` reach no plugin.

    For worker threads left behind by a timeout: their item has been reported
    as failed already, and they may still run for the rest of the session.
    """
    original = pluginmanager._inner_hookexec

    def hookexec(
        name: str, methods: Sequence[Any], kwargs: Mapping[str, object], firstresult: bool
    ) -> object:
        if name in ROUTED_HOOKS and threading.current_thread() in threads:
            return None if firstresult else []
        return original(name, methods, kwargs, firstresult)

    pluginmanager._inner_hookexec = hookexec  # type: ignore[assignment]


__all__ = [
    "CURRENT_ITEM",
    "HOOK_SINK",
    "ConcurrentSetupState",
    "FixtureStore",
    "HookCall",
    "HookRouter",
    "OutsideTests",
    "anyio_runner_per_thread",
    "check_pytest_version",
    "current_item",
    "dots_only_progress",
    "drop_report_hooks_from",
    "install_fixture_store",
    "item_context",
    "replace_setup_state",
    "thread_safe_runtime",
    "uninstall_fixture_store",
    "xdist_is_active",
]
