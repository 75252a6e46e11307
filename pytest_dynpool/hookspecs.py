"""Hooks that pytest-dynpool adds, for conftest files and other plugins to implement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from .jobs import Job, JobAssignment
    from .reports.record import HttpJobRecord
    from .slot_gate import ItemClaims, SlotGate
    from .summary import RunStats


class PoolControl(Protocol):
    """What a plugin may do to the pool while the pooled phase runs.

    Handed to ``pytest_dynpool_pool_started``; the only way in which code outside
    the pool core (the HTTP plugin's adaptive mode, for one) changes the pool.
    """

    @property
    def jobs(self) -> Sequence[Job]:
        """The jobs of the pooled phase, in plan order."""

    def set_job_cap(self, job_name: str, cap: int) -> None:
        """Let at most ``cap`` (>= 1) items of job ``job_name`` be in flight from now on.

        Items already in flight above it are not stopped; waiting workers re-check
        at once. An unknown job name raises ``KeyError``. A no-op once the pooled
        phase has ended, so a listener may outlive the pool.
        """

    def resume_job(self, job_name: str) -> None:
        """End the deferral of job ``job_name`` now: its slot gate expects a slot to be free.

        For a limits store that saw another process release a slot of the job
        before the deferral it asked for ran out. A no-op for a job that is not
        deferred, and once the pooled phase has ended. Unknown name: ``KeyError``.
        """


@pytest.hookspec(firstresult=True)
def pytest_dynpool_job_for_item(item: pytest.Item) -> JobAssignment | None:
    """Return the job ``item`` belongs to, or None to leave the decision to others.

    The default implementation (``trylast``) reads ``@pytest.mark.dynpool``, so a
    conftest can put items into jobs by other rules, for example by the host a
    test talks to, and still let markers decide for everything else. An item
    for which every implementation returns None is unmarked.
    """


@pytest.hookspec
def pytest_dynpool_pool_started(config: pytest.Config, pool: PoolControl) -> None:
    """Called on the main thread when the pooled phase starts, before any pooled item runs.

    Keep ``pool`` to change a job's effective cap while the phase runs (the HTTP
    plugin follows the server's 429/503 answers this way). Not called when no
    item is pooled.
    """


@pytest.hookspec(firstresult=True)
def pytest_dynpool_slot_gate(config: pytest.Config) -> SlotGate | None:
    """Return the ``SlotGate`` the pool asks for a slot of an item's job before it starts.

    For limits shared with other processes (a limits backend): the gate may
    refuse, and the job is then deferred for the seconds it names while other
    jobs run on. None (every implementation): the process's own caps only.
    Called on the main thread when the pooled phase starts.
    """


@pytest.hookspec(firstresult=True)
def pytest_dynpool_item_claims(config: pytest.Config, gate: SlotGate | None) -> ItemClaims | None:
    """Return the ``ItemClaims`` through which this process shares pooled items with others.

    The xdist worker's balance (``xdist_balance``): every worker may run any pooled
    item, each claimed by one worker in the store as it starts. ``gate`` is what
    ``pytest_dynpool_slot_gate`` returned. None: the plan's items are this
    process's alone. Called on the main thread when the pooled phase starts.
    """


@pytest.hookspec
def pytest_dynpool_run_finished(config: pytest.Config, stats: RunStats) -> None:
    """Called on the main thread after the pooled phase with its measured figures."""


@pytest.hookspec
def pytest_dynpool_item_finished(
    item: pytest.Item, worker: str, started: float, ended: float, timed_out: bool
) -> None:
    """Called on the main thread when a pooled item is done and its reports are logged.

    ``worker`` is the name of the thread that ran it; ``started`` and ``ended``
    are ``pytest_dynpool.clock.perf_counter()`` readings (``time.perf_counter``,
    real even while a test fakes time; in flight: from the start of its setup
    to the end of its teardown). An item that overran its timeout is reported
    once, when its timeout is logged, with ``timed_out=True`` and ``ended`` then.
    Items that run alone on the main thread (exclusive items) are not reported
    here: their ``pytest_runtest_logreport`` reports tell the same. This is what
    the JSON and HTML reports build their timeline from.
    """


@pytest.hookspec
def pytest_dynpool_report_http(
    config: pytest.Config, run_started: float
) -> list[HttpJobRecord] | None:
    """Return what each job's HTTP client saw, for the reports (``--dynpool-report``).

    Called on the main thread at the end of the session, only when a report is
    written. ``run_started`` is the ``pytest_dynpool.clock.monotonic()`` reading at the start of
    the run: times in the records are seconds from it. The HTTP plugin
    implements it; a plugin with HTTP clients of its own may add its jobs.
    """
