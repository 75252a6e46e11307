"""anyio's pytest plugin, made to give each worker thread its own event loop.

anyio runs async tests and fixtures on one test runner (one event loop) kept in
module globals of ``anyio.pytest_plugin`` and shared by every caller: two
async tests on two workers would run one loop from two threads. While the pool
runs, ``get_runner`` (looked up by the plugin at each call) is replaced by the
same logic with per-thread state. Checked against anyio 4.x.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from ..patching import Patches


class _ThreadRunner(threading.local):
    runner: Any = None
    stack: ExitStack | None = None
    leases: int = 0


def anyio_runner_per_thread(patches: Patches) -> None:
    """Until ``patches`` are undone, each thread but the main one gets its own anyio runner."""
    try:
        from anyio import pytest_plugin
    except ImportError:  # anyio absent: no async tests through it
        return
    original = getattr(pytest_plugin, "get_runner", None)
    if original is None:
        return
    local = _ThreadRunner()

    @contextmanager
    def get_runner(backend_name: str, backend_options: dict[str, Any]) -> Iterator[Any]:
        if threading.current_thread() is threading.main_thread():
            with original(backend_name, backend_options) as runner:
                yield runner
            return
        if local.runner is None:
            stack = ExitStack()
            # The helpers the plugin's own get_runner uses, from its namespace.
            helpers: Any = pytest_plugin
            if helpers.current_async_library() is None:
                token = helpers.set_current_async_library(backend_name)
                stack.callback(helpers.reset_current_async_library, token)
            asynclib = helpers.get_async_backend(backend_name)
            local.runner = stack.enter_context(asynclib.create_test_runner(backend_options or {}))
            local.stack = stack
        local.leases += 1
        try:
            yield local.runner
        finally:
            local.leases -= 1
            if not local.leases and local.stack is not None:
                stack, local.stack, local.runner = local.stack, None, None
                stack.close()

    patches.setattr(pytest_plugin, "get_runner", get_runner)
