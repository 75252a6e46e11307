"""Shared helpers for the plugin's own tests."""

from __future__ import annotations

import threading

import pytest
from hypothesis import settings

pytest_plugins = ["pytester"]

# A generated suite takes about 0.4 s per example (two in-process runs): 250 examples
# are about 95 s on a 2-core machine; CI runs them on the newest and the oldest pytest.
settings.register_profile("dynpool-ci", max_examples=250, deadline=None)
settings.register_profile("dynpool-long", max_examples=1500, deadline=None)
settings.register_profile("dynpool-quick", max_examples=30, deadline=None)  # while editing
settings.load_profile("dynpool-ci")


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
