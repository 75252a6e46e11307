"""``--sw`` after a pooled run: the next run resumes at the first test that did not pass.

Plain pytest stops at the first failure in collection order, and stepwise starts
the next run there. The pool has several tests in flight when the first failure
stops the run: a later test may fail after it (stepwise would remember that one
and skip the earlier failure next time), and tests before it in collection order
may never have started. So, when the session finishes, stepwise's resume point
becomes the first test in collection order that did not pass (with
``--sw-skip``, the first one after the failure that it skips).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ..pytest_compat import set_stepwise_last_failed


def resume_point(
    order: Sequence[str], finished: set[str], failed: set[str], skip_first_failure: bool
) -> str | None:
    """The node id to resume at; None when nothing failed (stepwise's own choice stands)."""
    if not failed:
        return None
    not_passed = [nodeid for nodeid in order if nodeid not in finished or nodeid in failed]
    if skip_first_failure and not_passed and not_passed[0] in failed:
        not_passed = not_passed[1:]
    return not_passed[0] if not_passed else None


class StepwiseResume:
    """Registered for a pooled session under ``--sw``: records outcomes, then sets the point."""

    def __init__(self, items: Sequence[pytest.Item], skip_first_failure: bool) -> None:
        self.order = [item.nodeid for item in items]
        self.skip_first_failure = skip_first_failure
        self.finished: set[str] = set()
        self.failed: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failed.add(report.nodeid)
        if report.when == "teardown":
            self.finished.add(report.nodeid)

    @pytest.hookimpl(tryfirst=True)  # before stepwise writes its cache
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        point = resume_point(self.order, self.finished, self.failed, self.skip_first_failure)
        if point is not None:
            set_stepwise_last_failed(session.config, point)


def follow_stepwise(session: pytest.Session) -> None:
    """Under ``--sw``, register the above for this session."""
    config = session.config
    skip = bool(config.getoption("stepwise_skip", False))  # --sw-skip implies --sw
    if not (config.getoption("stepwise", False) or skip) or config.pluginmanager.has_plugin(_NAME):
        return
    config.pluginmanager.register(StepwiseResume(session.items, skip), _NAME)


_NAME = "dynpool-stepwise"
