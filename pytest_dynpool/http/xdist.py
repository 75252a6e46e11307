"""Under pytest-xdist: each worker's HTTP statistics go to the controller, which shows one section.

A worker puts its jobs' figures into ``workeroutput`` (plain data: execnet sends
only builtins); the controller sums them per job. A job's ``cap`` in the merged
table is the sum of the workers' effective caps at the end: their shares of the
job's cap, or less where adaptive mode backed off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from ..model import Job, Rate
from ..pytest_compat import xdist_worker_output
from .summary import format_http_summary
from .traffic import HttpStats, JobTraffic, TrafficRegistry

WORKEROUTPUT_KEY = "dynpool_http"


def states_to_data(states: Sequence[JobTraffic]) -> list[dict[str, Any]]:
    return [
        {
            "name": state.name,
            "declared_at": state.job.declared_at,
            "effective_cap": state.effective_cap,
            "rate": state.rate.per_second if state.rate is not None else None,
            "requests": state.stats.requests,
            "status_classes": state.stats.status_classes,
            "overloaded": state.stats.overloaded,
            "retries": state.stats.retries,
            "errors": state.stats.errors,
            "latencies": state.stats.latencies,
        }
        for state in states
        if state.stats.requests
    ]


def merge_states(per_worker: Sequence[Sequence[dict[str, Any]]]) -> list[JobTraffic]:
    """One state per job name with the summed figures of every worker."""
    totals: dict[str, dict[str, Any]] = {}
    for states in per_worker:
        for data in states:
            total = totals.setdefault(
                data["name"],
                {"declared_at": data["declared_at"], "cap": 0, "rate": None, "stats": HttpStats()},
            )
            total["cap"] += int(data["effective_cap"])
            if data["rate"] is not None:
                total["rate"] = (total["rate"] or 0.0) + float(data["rate"])
            stats: HttpStats = total["stats"]
            stats.requests += int(data["requests"])
            for status_class, count in data["status_classes"].items():
                stats.status_classes[status_class] = (
                    stats.status_classes.get(status_class, 0) + count
                )
            stats.overloaded += int(data["overloaded"])
            stats.retries += int(data["retries"])
            stats.errors += int(data["errors"])
            stats.latencies.extend(float(value) for value in data["latencies"])
    merged = []
    for name, total in totals.items():
        per_second = total["rate"]
        rate = None if per_second is None else Rate(per_second, 1.0, f"{per_second:g}/s")
        job = Job(name, total["cap"], total["cap"], total["declared_at"], rate=rate)
        state = JobTraffic(job)
        state.stats = total["stats"]
        merged.append(state)
    return merged


class HttpXdistWorker:
    """On a worker: hand this process's HTTP figures to the controller at the end."""

    def __init__(self, registry: TrafficRegistry) -> None:
        self.registry = registry

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        data = states_to_data(self.registry.states())
        if data:
            xdist_worker_output(session.config)[WORKEROUTPUT_KEY] = data


class HttpXdistController:
    """On the controller: gather the workers' figures and show one ``dynpool http`` section."""

    def __init__(self) -> None:
        self.per_worker: list[list[dict[str, Any]]] = []

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if data:
            self.per_worker.append(data)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        lines = format_http_summary(merge_states(self.per_worker))
        if not lines:
            return
        terminalreporter.write_sep("=", "dynpool http")
        for line in lines:
            terminalreporter.write_line(line)
        terminalreporter.write_line(
            f"(all {len(self.per_worker)} xdist workers that sent requests; cap: the sum of "
            "their effective caps at the end)"
        )
