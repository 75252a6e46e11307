"""pytest-dynpool: run marked tests on one shared thread pool, with a cap per job.

PYTEST_DONT_REWRITE: the plugin's own asserts are internal invariants.
"""

from __future__ import annotations

from .http.traffic import HttpStats, JobState, JobTraffic
from .model import Job, JobAssignment, JobSpec, Rate
from .scheduler import CappedScheduler, Scheduler
from .summary import JobStats, RunStats

__all__ = [
    "CappedScheduler",
    "HttpStats",
    "Job",
    "JobAssignment",
    "JobSpec",
    "JobState",
    "JobStats",
    "JobTraffic",
    "Rate",
    "RunStats",
    "Scheduler",
]
