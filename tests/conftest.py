"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from hypothesis import settings

from pytest_dynpool import patching

from .redis_server import RedisServer, started_redis

pytest_plugins = ["pytester"]

# A generated suite takes about 0.4 s per example (two in-process runs): 250 examples
# are about 95 s on a 2-core machine; CI runs them on the newest and the oldest pytest
# (CI=true, or .ci/run's --hypothesis-profile=dynpool-ci). A local run takes 30, so that
# the README's test command stays a quick loop.
settings.register_profile("dynpool-local", max_examples=30, deadline=None)
settings.register_profile("dynpool-ci", max_examples=250, deadline=None)
settings.register_profile("dynpool-long", max_examples=1500, deadline=None)
settings.load_profile(
    "dynpool-ci" if os.environ.get("CI", "").lower() == "true" else "dynpool-local"
)


def outcomes_by_nodeid(result: pytest.RunResult) -> dict[str, list[tuple[str, str]]]:
    """Every (phase, outcome) that an in-process run logged, per node id, sorted."""
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    by_nodeid: dict[str, list[tuple[str, str]]] = {}
    for report in reports:
        by_nodeid.setdefault(report.nodeid, []).append((report.when, report.outcome))
    return {nodeid: sorted(phases) for nodeid, phases in by_nodeid.items()}


def assert_no_worker_left() -> None:
    """Every dynpool worker thread has ended (joined first: it exits just after its last event)."""
    workers = [t for t in threading.enumerate() if t.name.startswith("dynpool-worker-")]
    for thread in workers:
        thread.join(timeout=60)  # never expected to wait long; a leak fails below, not hangs
    assert not [t.name for t in workers if t.is_alive()]


@pytest.fixture(autouse=True)
def _every_patch_undone(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that ran pytest in-process: every patch is undone, no worker is left.

    Checked after pytester's own teardown, so also after the runs' session ends.
    """
    yield
    if "pytester" not in request.fixturenames:
        return
    assert_no_worker_left()  # a thread left behind by a timeout ends its silence as it ends
    assert patching.live_patches() == 0
    assert patching.unrestored() == []


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session's tests; each test uses its own namespace."""
    server = started_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
