"""Other plugins whose machinery cannot run beside items in flight: the pool stays off.

pytest-rerunfailures reruns an item by taking the wider scopes' finalizers out
of ``session._setupstate.stack`` into a process-global dict and putting them
back afterwards; with several items in flight those scopes belong to all of
them. So when it may rerun anything, the run is plain pytest's (and says so).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

RERUN_MARKER = "flaky"


def _rerunfailures_active(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("rerunfailures")


def reason_to_stay_off(config: pytest.Config) -> str | None:
    """Known at configure time: a global rerun setting."""
    if not _rerunfailures_active(config):
        return None
    reruns = config.getoption("reruns", None) or config.getoption("force_reruns", None)
    if not reruns:
        try:
            reruns = config.getini("reruns")
        except ValueError:
            reruns = None
    if reruns and str(reruns).strip() not in ("0", ""):
        return "pytest-rerunfailures reruns failed tests (--reruns); markers are ignored"
    return None


def reason_to_stay_off_for(config: pytest.Config, items: Sequence[pytest.Item]) -> str | None:
    """Known after collection: items marked ``flaky`` for pytest-rerunfailures."""
    if not _rerunfailures_active(config):
        return None
    flaky = sum(item.get_closest_marker(RERUN_MARKER) is not None for item in items)
    if flaky:
        return (
            f"pytest-rerunfailures may rerun {flaky} items marked flaky; "
            "dynpool markers are ignored"
        )
    return None
