"""pytest-dynpool: run marked tests on one shared thread pool, with a cap per job."""

from __future__ import annotations

from .jobs import Job, JobAssignment, JobSpec
from .scheduler import CappedScheduler, Scheduler
from .summary import JobStats, RunStats

__all__ = [
    "CappedScheduler",
    "Job",
    "JobAssignment",
    "JobSpec",
    "JobStats",
    "RunStats",
    "Scheduler",
]
