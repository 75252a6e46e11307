"""The HTTP fixtures: ``dynpool_job``, ``dynpool_client``, ``dynpool_async_client``.

A pytest plugin of its own, registered by ``pytest_dynpool.plugin``; it also
works with the pool off (``-p no:dynpool``), where each test's job comes from
its marker directly and its requests still obey the job's limits. It owns its
option, its summary table and its state; it learns of the pool only through
the ``pytest_dynpool_pool_started`` hook, and the pool never imports it.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING

import pytest

from ..jobs import ITEM_JOB_KEY, UNMARKED_EXCLUSIVE_JOB, assignment_from_marker
from ..limits_store import GATE_KEY
from ..model import Job
from ..own_waits import add_own_wait, add_slot_uses
from ..xdist_role import distributes, worker_input
from .options import add_http_options, read_base_url
from .summary import format_http_summary
from .traffic import CURRENT_HOLDER, HeldSlots, JobTraffic, TrafficRegistry

if TYPE_CHECKING:  # httpx is imported on first use: runs that make no request don't pay for it
    import httpx

    from ..hookspecs import PoolControl
    from ..reports.record import HttpJobRecord

TRAFFIC_KEY = pytest.StashKey[TrafficRegistry]()
REGISTRY_KEY = TRAFFIC_KEY  # its name before the rename; conftests read it


def pytest_addoption(parser: pytest.Parser) -> None:
    add_http_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    # A shared limits store (issue 12) opens when the pool starts; requests ask it then.
    registry = config.stash[TRAFFIC_KEY] = TrafficRegistry(
        shared_store=lambda: config.stash.get(GATE_KEY, None)
    )
    # Under pytest-xdist: the workers' figures are shown once, by the controller.
    if worker_input(config) is not None:
        from .xdist import HttpXdistWorker

        config.pluginmanager.register(HttpXdistWorker(registry), "dynpool-http-xdist-worker")
    elif distributes(config):
        from .xdist import HttpXdistController

        config.pluginmanager.register(HttpXdistController(), "dynpool-http-xdist-controller")


def registry_of(config: pytest.Config) -> TrafficRegistry:
    """The run's per-job traffic (made at configure time, before any thread starts)."""
    return config.stash[TRAFFIC_KEY]


def job_of(item: pytest.Item) -> Job:
    """The job the plan gave ``item``; without a plan (pool off), its marker's job."""
    job = item.stash.get(ITEM_JOB_KEY, None)
    if job is not None:
        return job
    assignment = assignment_from_marker(item)
    if assignment is None:
        return UNMARKED_EXCLUSIVE_JOB
    return Job.from_assignment(assignment)


@pytest.hookimpl(optionalhook=True)  # the hook is absent under -p no:dynpool
def pytest_dynpool_pool_started(config: pytest.Config, pool: PoolControl) -> None:
    """Adaptive jobs: the pool dispatches tests against the cap the server's answers set."""
    registry = config.stash.get(TRAFFIC_KEY, None)
    if registry is None:
        return
    for job in pool.jobs:
        if job.adaptive:
            _CapFollower(registry.state(job), pool).follow()


class _CapFollower:
    """Passes one job's effective cap on to the pool, now and after every change."""

    def __init__(self, traffic: JobTraffic, pool: PoolControl) -> None:
        self._traffic = traffic
        self._pool = pool

    def follow(self) -> None:
        self._traffic.on_cap_change(self._pass_on)
        self._pass_on()  # tests that ran alone before the pool may have moved it already

    def _pass_on(self) -> None:
        self._pool.set_job_cap(self._traffic.name, self._traffic.effective_cap)


class UnclosedResponseWarning(pytest.PytestWarning):
    """A test ended with a response of a dynpool client still open; its slot was given back."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Every request slot this test takes is noted, on any thread or task it runs on.

    The holder lives in the test's context only (not on the item, which outlives it by
    the whole session): its teardown, inside this hook, finds it there. It also measures
    the time the test was blocked on its job's limits, which the lower bound does not
    count as work, and each request's time on the server, a use of one of its job's
    slots (``own_waits``): only those figures stay on the item.
    """
    holder = HeldSlots()
    token = CURRENT_HOLDER.set(holder)
    try:
        return (yield)
    finally:
        CURRENT_HOLDER.reset(token)
        holder.give_back()  # our teardown wrapper did not run (an interrupt): still give back
        add_own_wait(item, holder.blocked_seconds())
        for job_name, seconds in holder.served_seconds().items():
            add_slot_uses(item, job_name, seconds)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the test's own teardown: slots it still holds come back, with a warning on it."""
    try:
        yield
    finally:
        holder = CURRENT_HOLDER.get()
        if holder is not None and holder.taken:  # a test that took no slot has none to give
            _warn_of_leaks(item, holder.give_back())


def _warn_of_leaks(item: pytest.Item, job_names: list[str]) -> None:
    for job_name in sorted(set(job_names)):
        count = job_names.count(job_name)
        what = "1 response of" if count == 1 else f"{count} responses of"
        were, slots = ("was", "its request slot is") if count == 1 else ("were", "their slots are")
        item.warn(
            UnclosedResponseWarning(
                f"{what} dynpool job {job_name!r} {were} still open when the test ended "
                f"(a client.stream(...) never closed?); {slots} given back now, "
                "so that the job's later requests do not wait for them"
            )
        )


class _SharedClients:
    """One ``httpx.Client`` per job, made on first use, closed at the end of the session."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._lock = threading.Lock()  # tests of one job ask for it at once
        self._clients: dict[str, httpx.Client] = {}

    def client_for(self, traffic: JobTraffic) -> httpx.Client:
        with self._lock:
            client = self._clients.get(traffic.name)
            if client is None:
                from .transport import make_client

                client = self._clients[traffic.name] = make_client(traffic, self.base_url)
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


@pytest.fixture(scope="session")
def dynpool_base_url(pytestconfig: pytest.Config) -> str:
    """``--dynpool-base-url``, else ``$DYNPOOL_BASE_URL``, else ini ``dynpool_base_url``.

    Override this fixture in a conftest to point the clients at a server the
    suite starts itself.
    """
    return read_base_url(pytestconfig)


@pytest.fixture(scope="session")
def _dynpool_shared_clients(dynpool_base_url: str) -> Iterator[_SharedClients]:
    clients = _SharedClients(dynpool_base_url)
    try:
        yield clients
    finally:
        clients.close()


@pytest.fixture
def dynpool_job(request: pytest.FixtureRequest) -> JobTraffic:
    """The current test's job: name, cap, effective_cap, min_effective_cap, rate, stats."""
    return registry_of(request.config).state(job_of(request.node))


@pytest.fixture
def dynpool_client(
    dynpool_job: JobTraffic, _dynpool_shared_clients: _SharedClients
) -> httpx.Client:
    """The job's ``httpx.Client``: its requests obey the job's cap, rate and adaptive mode."""
    return _dynpool_shared_clients.client_for(dynpool_job)


@pytest.fixture
async def dynpool_async_client(
    dynpool_job: JobTraffic, dynpool_base_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` for one async test (asyncio), under the job's shared limits."""
    from .transport import make_async_client

    async with make_async_client(dynpool_job, dynpool_base_url) as client:
        yield client


@pytest.hookimpl(optionalhook=True)  # the hookspec is missing with -p no:dynpool
def pytest_dynpool_report_http(config: pytest.Config, run_started: float) -> list[HttpJobRecord]:
    """Each job's HTTP figures for the reports, with times from the run's start."""
    registry = config.stash.get(TRAFFIC_KEY, None)
    if registry is None:
        return []
    return [job.report_record(run_started) for job in registry.states() if job.stats.requests]


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    registry = terminalreporter.config.stash.get(TRAFFIC_KEY, None)
    if registry is None:
        return
    lines = format_http_summary(registry.states())
    if not lines:
        return
    terminalreporter.write_sep("=", "dynpool http")
    for line in lines:
        terminalreporter.write_line(line)
