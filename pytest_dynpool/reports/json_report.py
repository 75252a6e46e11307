"""The JSON report: the run's records as a versioned document (``report.schema.json``)."""

from __future__ import annotations

import json
from importlib import metadata, resources
from typing import Any

import pytest

from .record import HttpJobRecord, ItemRecord, JobRecord, RunRecord

SCHEMA_ID = "pytest-dynpool-report"
# Bumped on any change that could break a reader: a removed or renamed field, a new meaning.
# Added fields keep the version.
SCHEMA_VERSION = 1
SCHEMA_FILE = "report.schema.json"


def _seconds(value: float) -> float:
    return round(value, 6)


def _optional_seconds(value: float | None) -> float | None:
    return None if value is None else _seconds(value)


def _item(item: ItemRecord) -> dict[str, Any]:
    return {
        "nodeid": item.nodeid,
        "job": item.job,
        "worker": item.worker,
        "process": item.process,
        "start": _seconds(item.start),
        "end": _seconds(item.end),
        "outcome": item.outcome,
        "phases": dict(item.phases),
        "timed_out": item.timed_out,
    }


def _job(job: JobRecord) -> dict[str, Any]:
    return {
        "name": job.name,
        "declared_at": job.declared_at,
        "cap": job.cap,
        "declared_cap": job.declared_cap,
        "effective_cap": job.effective_cap,
        "min_effective_cap": job.min_effective_cap,
        "rate": job.rate,
        "declared_rate": job.declared_rate,
        "adaptive": job.adaptive,
        "items": job.items,
        "outcomes": dict(job.outcomes),
        "peak_in_flight": job.peak_in_flight,
        "busy_seconds": _seconds(job.busy_seconds),
        "bound_seconds": _seconds(job.bound_seconds),
    }


def _http(traffic: HttpJobRecord) -> dict[str, Any]:
    return {
        "job": traffic.job,
        "requests": traffic.requests,
        "status_classes": dict(traffic.status_classes),
        "overloaded": traffic.overloaded,
        "retries": traffic.retries,
        "errors": traffic.errors,
        "latency_seconds": {
            "p50": _optional_seconds(traffic.latency_p50),
            "p95": _optional_seconds(traffic.latency_p95),
            "p99": _optional_seconds(traffic.latency_p99),
        },
        "effective_cap": traffic.effective_cap,
        "min_effective_cap": traffic.min_effective_cap,
        "cap_changes": [
            {"at": _seconds(change.at), "cap": change.cap} for change in traffic.cap_changes
        ],
        "overloaded_at": [_seconds(at) for at in traffic.overloaded_at],
    }


def report_document(record: RunRecord) -> dict[str, Any]:
    """The report as JSON-ready data: what ``--dynpool-report`` writes."""
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "generator": {
            "pytest_dynpool": metadata.version("pytest-dynpool"),
            "pytest": pytest.__version__,
        },
        "run": {
            "started_at": record.started_at,
            "workers": record.workers,
            "backend": record.backend,
            "namespace": record.namespace,
            "processes": list(record.processes),
            "wall_seconds": _seconds(record.wall_seconds),
            "pool_wall_seconds": _seconds(record.pool_wall_seconds),
            "lower_bound_seconds": _seconds(record.lower_bound_seconds),
            "bounded_by": {
                "term": record.bounded_by,
                "job": record.bounding_job,
                "then_session_teardown_seconds": _seconds(record.session_teardown_seconds),
            },
            "peak_in_flight": record.peak_in_flight,
            "exit_status": record.exit_status,
            "interrupted": record.interrupted,
            "not_started": record.not_started,
            "timed_out": list(record.timed_out),
            "threads_left_behind": record.threads_left_behind,
        },
        "jobs": [_job(job) for job in record.jobs_by_bound()],
        "items": [_item(item) for item in record.items],
        "http": [_http(traffic) for traffic in record.http],
    }


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every report validates against."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def render_json(record: RunRecord) -> str:
    """The report as the text ``--dynpool-report`` writes."""
    # Compact: a report of 50,000 items is an artifact to keep, not to read by eye (use jq).
    return json.dumps(report_document(record), separators=(",", ":")) + "\n"
