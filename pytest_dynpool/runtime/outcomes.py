"""What the dynpool table counts for a report: the category pytest itself gives it.

The terminal counts each report by ``pytest_report_teststatus``, which other
plugins extend (xfail, subtests) and which may even change a report (pytest 9
fails a test whose subtests failed, when it is first asked). The table asks the
same hook, after the report was logged, so that its counts agree with pytest's.
"""

from __future__ import annotations

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


def is_subtest(report: pytest.TestReport, category: str) -> bool:
    """A subtest's own report (pytest 9's ``subtests``, or the pytest-subtests plugin)."""
    if _SubtestReport is not None and isinstance(report, _SubtestReport):
        return True
    return category.startswith("subtests ")


def category_of(config: pytest.Config, report: pytest.TestReport) -> str:
    status = config.hook.pytest_report_teststatus(report=report, config=config)
    category = status[0] if status else ""
    return category if isinstance(category, str) else ""


def outcome_of(config: pytest.Config, report: pytest.TestReport) -> tuple[Outcome | None, bool]:
    """The item outcome this report counts for (None: none, like a passed setup), and
    whether it is a failed subtest (counted apart, as pytest's SUBFAILED)."""
    return outcome_in(report, category_of(config, report))


def outcome_in(report: pytest.TestReport, category: str) -> tuple[Outcome | None, bool]:
    """``outcome_of`` for a report whose category the terminal already gave it."""
    if is_subtest(report, category):
        return None, report.failed
    return _BY_CATEGORY.get(category), False
