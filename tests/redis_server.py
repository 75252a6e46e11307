"""The real ``redis-server`` of the tests (``benchmarks/redis_server.py``), or a skip.

Missing ``redis-server`` skips the tests with how to install it, except under
``CI=true`` where it fails: CI installs it, so a skip there would hide a gap.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.redis_server import INSTALL_HINT, RedisMissing, RedisServer, free_port

__all__ = ["RedisServer", "free_port", "started_redis"]


def started_redis(directory: Path, password: str | None = None) -> RedisServer:
    """A started server, or skip (fail under CI=true) with the install hint."""
    server = RedisServer(directory, password)
    try:
        server.start()
    except RedisMissing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{INSTALL_HINT} (CI=true: the Redis tests must run)")
        pytest.skip(INSTALL_HINT)
    return server
