"""What the dynpool table counts for a report: the category pytest itself gives it.

The terminal counts each report by ``pytest_report_teststatus``, which other
plugins extend (xfail, subtests) and which may even change a report (pytest 9
fails a test whose subtests failed, when it is first asked). The table takes
the answer the terminal got while the report was logged (``StatusSeen``), and
asks the same hook itself only when nobody did (no terminal, or a plugin that
replaced it), so that its counts agree with pytest's.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from ..summary import Outcome

_BY_CATEGORY = {
    "passed": Outcome.PASSED,
    "failed": Outcome.FAILED,
    "error": Outcome.FAILED,
    "skipped": Outcome.SKIPPED,
    "xfailed": Outcome.XFAILED,
    "xpassed": Outcome.XPASSED,
}

_SubtestReport: type | None = getattr(pytest, "SubtestReport", None)  # pytest >= 9


class StatusSeen:
    """The last answer of ``pytest_report_teststatus``, and the report it was for.

    Registered as a plugin for the pooled phase: the terminal asks the hook for
    every report it logs, so the table need not ask a second time (three more hook
    calls per test). One tuple, replaced whole: a reader never sees a report paired
    with another report's answer.
    """

    def __init__(self) -> None:
        self.last: tuple[object, object] = (None, None)

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report: object) -> Generator[None, object, object]:
        status = yield
        self.last = (report, status)
        return status


def outcome_of(
    config: pytest.Config, report: pytest.TestReport, seen: StatusSeen | None = None
) -> tuple[Outcome | None, bool]:
    """The item outcome this report counts for (None: none, like a passed setup), and
    whether it is a failed subtest (counted apart, as pytest's SUBFAILED).

    The category is the one the hook gave ``report`` when it was logged (``seen``),
    asked now if nobody asked.
    """
    status: Any
    asked, status = seen.last if seen is not None else (None, None)
    if asked is not report:
        status = config.hook.pytest_report_teststatus(report=report, config=config)
    category = status[0] if status else ""
    return outcome_in(report, category if isinstance(category, str) else "")


def outcome_in(report: pytest.TestReport, category: str) -> tuple[Outcome | None, bool]:
    """``outcome_of`` for a report whose category the terminal already gave it."""
    # A subtest's own report: pytest 9's ``subtests``, or the pytest-subtests plugin.
    if (_SubtestReport is not None and isinstance(report, _SubtestReport)) or category.startswith(
        "subtests "
    ):
        return None, report.failed
    return _BY_CATEGORY.get(category), False
