"""A real ``redis-server`` for the tests: a free loopback port, its own temporary directory.

Missing ``redis-server`` skips the tests with how to install it, except under
``CI=true`` where it fails: CI installs it, so a skip there would hide a gap.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = "/usr/bin/redis-server"
INSTALL_HINT = "redis-server is not installed: apt-get install redis-server"
# Starting takes milliseconds; this only bounds a broken start.
START_SECONDS = 15.0


def redis_server_path() -> str:
    """The server's path, or skip (fail under CI=true) with the install hint."""
    path = REDIS_SERVER if os.path.exists(REDIS_SERVER) else shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{INSTALL_HINT} (CI=true: the Redis tests must run)")
        pytest.skip(INSTALL_HINT)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process, started by ``start`` and stopped by ``stop``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.directory / "redis.log", "wb")  # noqa: SIM115 - the server owns it
        with log:
            self.process = subprocess.Popen(
                [
                    redis_server_path(),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.directory),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = (self.directory / "redis.log").read_text(errors="replace")
                pytest.fail(f"redis-server did not start on port {self.port}:\n{log_text}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
