"""The one place that decides whether the pool stays off for a run, and why.

The pool stays off (every test runs as plain pytest runs it, and the header
says why) when something else owns the run loop or the setup state:

- pytest-xdist (``-n``, or we are one of its workers): it distributes the tests;
- ``--pdb``/``--trace``: a debugger needs one test at a time on the main thread;
- pytest-rerunfailures when it may rerun anything: it reruns an item by taking
  the wider scopes' finalizers out of ``session._setupstate.stack`` into a
  process-global dict and putting them back afterwards; with several items in
  flight those scopes belong to all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

RERUN_MARKER = "flaky"


def reason_to_stay_off(
    config: pytest.Config, items: Sequence[pytest.Item] | None = None
) -> str | None:
    """Why the pool stays off, or None when it may run.

    Without ``items`` (at configure time) only what the command line and the
    plugins decide; with the collected items also what their markers decide.
    """
    if hasattr(config, "workerinput") or getattr(config.option, "numprocesses", None):
        return "pytest-xdist is active (-n); markers are ignored"
    if config.getoption("usepdb", False) or config.getoption("trace", False):
        return "--pdb/--trace: every test runs alone"
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return None
    if _reruns_everything(config):
        return "pytest-rerunfailures reruns failed tests (--reruns); markers are ignored"
    if items is None:
        return None
    flaky = sum(item.get_closest_marker(RERUN_MARKER) is not None for item in items)
    if flaky:
        return (
            f"pytest-rerunfailures may rerun {flaky} items marked flaky; "
            "dynpool markers are ignored"
        )
    return None


def _reruns_everything(config: pytest.Config) -> bool:
    reruns = config.getoption("reruns", None) or config.getoption("force_reruns", None)
    if not reruns:
        try:
            reruns = config.getini("reruns")
        except ValueError:
            reruns = None
    return bool(reruns) and str(reruns).strip() not in ("0", "")
