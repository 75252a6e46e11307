"""``--dynpool-plan``: the jobs a run would have, printed after collection; nothing runs."""

from __future__ import annotations

import sys

import pytest

from ..jobs import Plan
from ..summary import align_columns, cap_text, rate_text, unknown_overrides_line


def format_plan(
    plan: Plan | None, workers: int, collected: int, off_reason: str | None
) -> list[str]:
    """Lines of the plan: a row per job with its cap, rate, adaptive flag, items and origin."""
    if off_reason is not None:
        return [f"dynpool plan: off ({off_reason}); all {collected} items run as plain pytest"]
    if plan is None or not plan.pooled:
        return [f"dynpool plan: no pooled job; all {collected} items run as plain pytest"]
    items = [0] * len(plan.jobs)
    for pooled in plan.pooled:
        items[pooled.job_index] += 1
    rows = [("job", "cap", "rate", "adaptive", "items", "declared at")]
    for job, count in zip(plan.jobs, items, strict=True):
        rows.append(
            (
                job.name,
                cap_text(job, workers),
                rate_text(job),
                "yes" if job.adaptive else "no",
                str(count),
                job.declared_at,
            )
        )
    lines = [
        f"dynpool plan: {len(plan.jobs)} jobs, {len(plan.pooled)} pooled items on "
        f"{workers} workers; {len(plan.exclusive)} exclusive items run alone first",
        *align_columns(rows, left=(0, 5)),
    ]
    if plan.unknown_overrides:
        lines.append(unknown_overrides_line(plan.unknown_overrides))
    return lines


def show_plan(session: pytest.Session, lines: list[str]) -> None:
    """Print the plan at any verbosity (-q and -qq too); without a terminal, on stdout."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        sys.stdout.write("\n".join(lines) + "\n")
        return
    reporter.ensure_newline()
    for line in lines:
        reporter.write_line(line)
