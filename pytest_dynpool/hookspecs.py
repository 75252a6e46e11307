"""Hooks that pytest-dynpool adds, for conftest files and other plugins to implement."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .jobs import JobAssignment
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
