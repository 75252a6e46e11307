"""The side channel between the xdist controller and its workers: files in one directory.

Job information never travels in node ids (xdist's loadgroup did that and broke
on pytest 9.2, pytest-xdist #1386). The controller makes a directory for the
run and names it in every worker's ``workerinput``; in it:

- ``plan-<worker>.json``: a worker's jobs and the job of every collected item,
  written before the worker reports its collection, so the controller finds it.
- ``limits.sqlite``: the run's limits store when the user chose none
  (``limits_store.store_for_xdist_run``).
- ``parts.json``: each worker's share of the pooled items (its preference): another
  worker steals from it once nothing of its own can start (``backends.claims``).
- ``stop``: -x / --maxfail reached somewhere: every worker stops dispatching.
- ``inflight-<worker>.log``: ``+index`` / ``-index`` lines as items start and
  end, so that after a crash the controller knows which items were in flight.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

WORKEROUTPUT_KEY = "dynpool_stats"
# In a worker's workeroutput: the args of the usage error its collection raised.
USAGE_ERROR_KEY = "dynpool_usage_error"
NO_JOB = -1  # an exclusive (unmarked) item


@dataclass(frozen=True)
class JobRecord:
    """A job as the controller needs it: name, cap and rate over the whole run."""

    name: str
    cap: int
    rate_per_second: float | None


@dataclass(frozen=True)
class CollectedPlan:
    """One worker's plan of the whole collection: the job of every item (or NO_JOB)."""

    jobs: list[JobRecord]
    job_of_item: list[int]


class SideChannel:
    """Read and write the channel's files; each write is atomic (temp file + rename)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _write(self, name: str, data: object) -> None:
        target = self.directory / name
        temporary = target.with_name(f".{name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, target)

    def write_plan(self, worker: str, plan: CollectedPlan) -> None:
        jobs = [[job.name, job.cap, job.rate_per_second] for job in plan.jobs]
        self._write(f"plan-{worker}.json", {"jobs": jobs, "job_of_item": plan.job_of_item})

    def read_plan(self) -> CollectedPlan | None:
        """The plan of any worker (all collected the same items), or None if none wrote one."""
        for path in sorted(self.directory.glob("plan-*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            jobs = [JobRecord(str(n), int(c), r) for n, c, r in data["jobs"]]
            return CollectedPlan(jobs, [int(j) for j in data["job_of_item"]])
        return None

    def write_parts(self, parts: dict[str, list[int]]) -> None:
        self._write("parts.json", parts)

    def read_parts(self) -> dict[str, list[int]]:
        """Each worker's share by worker id; empty before the controller wrote it."""
        path = self.directory / "parts.json"
        if not path.exists():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(worker): [int(i) for i in part] for worker, part in data.items()}

    def request_stop(self, reason: str) -> None:
        self._write("stop", reason)

    def stop_reason(self) -> str | None:
        path = self.directory / "stop"
        if not path.exists():
            return None
        reason: str = json.loads(path.read_text(encoding="utf-8"))
        return reason

    def inflight_log(self, worker: str) -> int:
        """An append-only file descriptor: each line is one ``os.write``, so never torn."""
        path = self.directory / f"inflight-{worker}.log"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _log_lines(self, worker: str) -> list[str]:
        path = self.directory / f"inflight-{worker}.log"
        return path.read_text(encoding="utf-8").split() if path.exists() else []

    def ever_started(self, worker: str) -> list[int]:
        """Every item that started on ``worker``, ended or not."""
        return sorted({int(line[1:]) for line in self._log_lines(worker) if line[0] == "+"})

    def in_flight(self, worker: str) -> list[int]:
        """Items that started on ``worker`` and did not end, most recent start first."""
        started: dict[int, None] = {}
        for line in self._log_lines(worker):
            index = int(line[1:])
            if line[0] == "+":
                started[index] = None
            else:
                started.pop(index, None)
        return list(reversed(started))
