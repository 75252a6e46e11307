"""The one place that decides whether the pool stays off for a run, and why.

The pool stays off (every test runs as plain pytest runs it, and the header
says why) when something else owns the run loop or the setup state:

- pytest-xdist with a ``--dist`` other than ``load`` (the default of ``-n``), or an
  xdist we have not checked; under ``-n`` with ``--dist load`` the pool runs on every
  worker (``xdist_controller``, ``xdist_worker``);
- ``--pdb``/``--trace``: a debugger needs one test at a time on the main thread;
- pytest-rerunfailures when it may rerun anything: it reruns an item by taking
  the wider scopes' finalizers out of ``session._setupstate.stack`` into a
  process-global dict and putting them back afterwards; with several items in
  flight those scopes belong to all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from .pytest_version import check_xdist_version
from .xdist_role import WORKERINPUT_KEY, distributes, worker_input

RERUN_MARKER = "flaky"
# Only xdist's ``load`` distribution is replaced by dynpool's (the default of ``-n``):
# the others group items by file, scope or group, and hand them out one by one.
XDIST_DIST_WITH_POOL = "load"


def _reason_under_xdist(config: pytest.Config) -> str | None:
    """Under ``-n``: dynpool runs with ``--dist load`` and a supported xdist, else stays off."""
    workerinput = worker_input(config)
    if workerinput is not None:
        if WORKERINPUT_KEY not in workerinput:
            return "the xdist controller runs without dynpool; markers are ignored"
        return None
    if not distributes(config):
        return None
    from xdist import __version__ as xdist_version

    if (reason := check_xdist_version(xdist_version)) is not None:
        return reason
    dist = config.getoption("dist", "no")
    if dist != XDIST_DIST_WITH_POOL:
        return (
            f"--dist {dist}: dynpool hands out items itself only with --dist load "
            "(the default of -n); markers are ignored"
        )
    return None


def reason_to_stay_off(
    config: pytest.Config, items: Sequence[pytest.Item] | None = None
) -> str | None:
    """Why the pool stays off, or None when it may run.

    Without ``items`` (at configure time) only what the command line and the
    plugins decide; with the collected items also what their markers decide.
    """
    if (reason := _reason_under_xdist(config)) is not None:
        return reason
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
