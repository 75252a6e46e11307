"""The real ``redis-server`` of the tests (``benchmarks/redis_server.py``), or a skip.

Missing ``redis-server`` skips the tests with how to install it, except under
``CI=true`` where it fails: CI installs it, so a skip there would hide a gap.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.redis_server import RedisMissing, RedisServer, free_port, make_tls_files

__all__ = ["RedisServer", "free_port", "started_redis"]


def started_redis(directory: Path, password: str | None = None, tls: bool = False) -> RedisServer:
    """A started server (with ``tls``, on TLS only, with a CA of its own), or skip.

    Under CI=true a missing package fails instead, with the same install hint.
    """
    try:
        server = RedisServer(directory, password, make_tls_files(directory) if tls else None)
        server.start()
    except RedisMissing as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} (CI=true: the Redis tests must run)")
        pytest.skip(str(missing))
    return server
