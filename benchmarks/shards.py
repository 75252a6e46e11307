"""Separate pytest processes (shards) of one generated suite, as a CI matrix runs them.

The suite has jobs capped 1, 2 and 3 and a job at ``rate="20/s"``; every test
sends one GET through ``dynpool_client`` to the endpoint named for its job, on a
server (``benchmarks/server.py``) that counts requests in flight per endpoint
across all the processes. A shard keeps every ``SHARDS``-th item, from its index.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CAPS = {"cap1": 1, "cap2": 2, "cap3": 3}
RATED_JOB, RATE_PER_SECOND, RATED_CAP = "rated", 20, 4
# Every shard process is killed after this: a hang fails the test, never blocks CI.
SHARD_SECONDS = 180

CONFTEST = '''
import os
import threading

from pytest_dynpool.backends.gate import StoreGate

_RECORDING = threading.Lock()
_UNDO = []


def pytest_configure(config):
    """With GRANTS_FILE set, append the store's time of every request token it grants
    (to GRANTS_FILE.<shard>).

    The store's own clock at the grant is what GCRA bounds; arrival times at a server
    add scheduling jitter on the way.
    """
    path = os.environ.get("GRANTS_FILE")
    if not path:
        return
    path = f"{path}.{os.environ['SHARD']}"
    take_token = StoreGate.take_token

    def recording(self, job, per_second, burst):
        token = take_token(self, job, per_second, burst)
        if token.wait == 0.0:
            with _RECORDING, open(path, "a") as out:
                out.write(f"{job}\\t{token.at!r}\\n")
        return token

    StoreGate.take_token = recording
    _UNDO.append(lambda: setattr(StoreGate, "take_token", take_token))


def pytest_unconfigure(config):
    while _UNDO:
        _UNDO.pop()()


def pytest_collection_modifyitems(config, items):
    """Keep this shard's items: every SHARDS-th, from SHARD (as pytest-split would)."""
    shard, shards = int(os.environ["SHARD"]), int(os.environ["SHARDS"])
    kept = [item for index, item in enumerate(items) if index % shards == shard]
    deselected = [item for item in items if item not in kept]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = kept
'''

CAPPED_MODULE = """
import os

import pytest

pytestmark = pytest.mark.dynpool({cap}, job="{job}")


@pytest.mark.parametrize("n", range({items}))
def test_request(n, dynpool_client):
    hold = "?hold" if os.environ.get("HOLD_JOB") == "{job}" else ""
    assert dynpool_client.get("/{job}" + hold).text == "{job}"
"""

RATED_MODULE = """
import pytest

pytestmark = pytest.mark.dynpool({cap}, job="{job}", rate="{rate}/s")


@pytest.mark.parametrize("n", range({items}))
def test_request(n, dynpool_client):
    assert dynpool_client.get("/{job}").text == "{job}"
"""


@dataclass(frozen=True)
class Suite:
    root: Path
    items_per_job: int
    rated_items: int

    @property
    def total(self) -> int:
        return self.items_per_job * len(CAPS) + self.rated_items


def write_suite(root: Path, items_per_job: int = 12, rated_items: int = 40) -> Suite:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (root / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    for job, cap in CAPS.items():
        source = CAPPED_MODULE.format(cap=cap, job=job, items=items_per_job)
        (root / f"test_{job}.py").write_text(source, encoding="utf-8")
    source = RATED_MODULE.format(
        cap=RATED_CAP, job=RATED_JOB, rate=RATE_PER_SECOND, items=rated_items
    )
    (root / f"test_{RATED_JOB}.py").write_text(source, encoding="utf-8")
    return Suite(root, items_per_job, rated_items)


@dataclass
class Shard:
    index: int
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=SHARD_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -1

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_shards(
    suite: Suite,
    port: int,
    backend: str,
    namespace: str,
    shards: int = 4,
    only: Sequence[int] | None = None,
    extra_env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> list[Shard]:
    """Start shard processes at once (``only``: some of them); each writes its own log."""
    started: list[Shard] = []
    for index in only if only is not None else range(shards):
        env = {
            **os.environ,
            "SHARD": str(index),
            "SHARDS": str(shards),
            "DYNPOOL_BASE_URL": f"http://127.0.0.1:{port}",
            "DYNPOOL_BACKEND": backend,
            "DYNPOOL_NAMESPACE": namespace,
            **(extra_env or {}),
        }
        env.pop("PYTEST_ADDOPTS", None)
        env.pop("CI", None)
        log = suite.root / f"shard-{index}-{len(started)}.log"
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly"]
        command += ["--dynpool-workers", "10", "-rA", *args, str(suite.root)]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, cwd=suite.root, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        started.append(Shard(index, process, log))
    return started
