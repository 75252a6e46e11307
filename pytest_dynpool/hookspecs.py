"""Hooks that pytest-dynpool adds, for conftest files and other plugins to implement."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .jobs import JobAssignment
    from .reports.record import HttpJobRecord
    from .summary import RunStats


@pytest.hookspec(firstresult=True)
def pytest_dynpool_job_for_item(item: pytest.Item) -> JobAssignment | None:
    """Return the job ``item`` belongs to, or None to leave the decision to others.

    The default implementation (``trylast``) reads ``@pytest.mark.dynpool``, so a
    conftest can put items into jobs by other rules, for example by the host a
    test talks to, and still let markers decide for everything else. An item
    for which every implementation returns None is unmarked.
    """


@pytest.hookspec
def pytest_dynpool_run_finished(config: pytest.Config, stats: RunStats) -> None:
    """Called on the main thread after the pooled phase with its measured figures."""


@pytest.hookspec
def pytest_dynpool_item_finished(
    item: pytest.Item, worker: str, started: float, ended: float, timed_out: bool
) -> None:
    """Called on the main thread when a pooled item is done and its reports are logged.

    ``worker`` is the name of the thread that ran it; ``started`` and ``ended``
    are ``time.perf_counter()`` readings (in flight: from the start of its setup
    to the end of its teardown). An item that overran its timeout is reported
    once, when its timeout is logged, with ``timed_out=True`` and ``ended`` then.
    Items that run alone on the main thread (exclusive items) are not reported
    here: their ``pytest_runtest_logreport`` reports tell the same. This is what
    the JSON and HTML reports build their timeline from.
    """


@pytest.hookspec
def pytest_dynpool_report_http(
    config: pytest.Config, run_started: float
) -> list[HttpJobRecord] | None:
    """Return what each job's HTTP client saw, for the reports (``--dynpool-report``).

    Called on the main thread at the end of the session, only when a report is
    written. ``run_started`` is the ``time.monotonic()`` reading at the start of
    the run: times in the records are seconds from it. The HTTP plugin
    implements it; a plugin with HTTP clients of its own may add its jobs.
    """
