"""The ``dynpool http`` section of the terminal summary: what each job's clients saw."""

from __future__ import annotations

from collections.abc import Sequence

from ..summary import align_columns
from .traffic import JobTraffic


def _milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def format_http_summary(jobs: Sequence[JobTraffic]) -> list[str]:
    """Lines of the ``dynpool http`` section; none when no request went through a client.

    ``cap`` is the effective cap at the end, with its minimum during the run
    and the declared cap when adaptive mode moved it.
    """
    used = [traffic for traffic in jobs if traffic.stats.requests]
    if not used:
        return []
    header: tuple[str, ...] = ("job", "requests", "2xx", "3xx", "4xx", "5xx", "429/503")
    header += ("retries", "errors", "p50 ms", "p95 ms", "rate", "cap")
    rows = [header]
    for traffic in used:
        stats = traffic.stats
        classes = stats.status_classes
        cap = str(traffic.effective_cap)
        if traffic.adaptive is not None:
            cap = f"{traffic.effective_cap} (min {traffic.min_effective_cap}, max {traffic.cap})"
        rows.append(
            (
                traffic.name,
                str(stats.requests),
                *(str(classes.get(f"{n}xx", 0)) for n in (2, 3, 4, 5)),
                str(stats.overloaded),
                str(stats.retries),
                str(stats.errors),
                _milliseconds(stats.percentile(0.50)),
                _milliseconds(stats.percentile(0.95)),
                str(traffic.rate) if traffic.rate is not None else "-",
                cap,
            )
        )
    return align_columns(rows)
