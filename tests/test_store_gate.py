"""The gate the runtime and the HTTP transports use: grants, refusals, wake-ups, failure."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pytest_dynpool.backends import BackendError, Lease, open_backend
from pytest_dynpool.backends.gate import LONGEST_DEFER_SECONDS, Refused, StoreFailed, StoreGate
from pytest_dynpool.backends.memory import MemoryBackend

WAIT = 30.0  # bounds a broken wait; never reached when the code is right


class BreakableBackend(MemoryBackend):
    """The memory store, until ``broken``: then every call fails as a lost store does."""

    broken = False

    def acquire(self, job: str, cap: int) -> Lease | None:
        if self.broken:
            raise BackendError("memory: gone")
        return super().acquire(job, cap)

    def release(self, lease: Lease) -> None:
        if self.broken:
            raise BackendError("memory: gone")
        super().release(lease)


def test_grants_up_to_the_cap_and_a_release_wakes_the_refused_job() -> None:
    woken: list[list[str]] = []
    event = threading.Event()

    def on_release(jobs: list[str]) -> None:
        woken.append(jobs)
        event.set()

    gate = StoreGate(open_backend("memory"), on_release)
    assert gate.try_acquire("api", 1) is None  # the runtime's door: None is granted
    defer = gate.try_acquire("api", 1)
    assert defer is not None
    assert 0 < defer <= 0.25  # the first step of the backoff
    gate.release("api")
    assert event.wait(WAIT)
    assert woken[0] == ["api"]
    assert gate.try_acquire("api", 1) is None
    assert gate.local_peaks == {"api": 1}
    gate.close()


def test_requests_lease_without_waking_the_runtime() -> None:
    gate = StoreGate(open_backend("memory"), lambda jobs: pytest.fail("no runtime job waits"))
    first = gate.lease("api", 1)
    assert isinstance(first, Lease)
    assert gate.lease("api", 1) == Refused(None)
    gate.release_lease(first)
    gate.close()


def test_start_rates_are_taken_with_the_slot() -> None:
    backend = open_backend("memory")
    gate = StoreGate(backend, start_rates={"api": (1 / 60, 1)})
    assert gate.try_acquire("api", 5) is None
    defer = gate.try_acquire("api", 5)
    assert defer is not None
    assert 0.25 < defer <= 60  # the token's wait, not a backoff step
    assert backend.in_flight("api") == 1
    gate.close()


def test_a_rate_refusal_gives_the_slot_back_and_says_how_long() -> None:
    backend = open_backend("memory")
    gate = StoreGate(backend)
    assert isinstance(gate.lease("api", 5, per_second=1 / 60, burst=1), Lease)
    refused = gate.lease("api", 5, per_second=1 / 60, burst=1)
    assert isinstance(refused, Refused)
    assert refused.retry_in is not None
    assert 0 < refused.retry_in <= 60
    assert backend.in_flight("api") == 1  # only the first one's slot
    gate.close()


def test_a_failed_store_refuses_everything_after_and_a_release_never_raises() -> None:
    backend = BreakableBackend()
    gate = StoreGate(backend)
    lease = gate.lease("api", 2)
    assert isinstance(lease, Lease)
    backend.broken = True
    gate.release_lease(lease)  # remembered, not raised
    assert gate.failure == "memory: gone"
    backend.broken = False
    with pytest.raises(StoreFailed, match="memory: gone"):
        gate.lease("api", 2)  # fail closed even though the store answers again
    gate.close()


def test_a_request_waits_for_a_slot_and_gives_it_back(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite://{tmp_path / 'limits.db'}")
    gate = StoreGate(backend)
    blocker = gate.lease("api", 1)
    assert isinstance(blocker, Lease)
    entered = threading.Event()

    def request() -> None:
        lease = gate.acquire_waiting("api", 1, WAIT)
        entered.set()
        gate.release_lease(lease)

    thread = threading.Thread(target=request)
    thread.start()
    assert not entered.is_set()
    assert backend.in_flight("api") == 1
    gate.release_lease(blocker)
    thread.join(WAIT)
    assert entered.is_set()
    assert backend.in_flight("api") == 0
    gate.close()


def test_a_request_gives_up_after_its_timeout() -> None:
    gate = StoreGate(open_backend("memory"))
    assert isinstance(gate.lease("api", 1), Lease)
    with pytest.raises(StoreFailed, match="no slot of 'api' came within"):
        gate.acquire_waiting("api", 1, 0.01)
    gate.close()


def test_close_gives_back_what_is_held_and_reports_store_peaks(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'limits.db'}"
    gate = StoreGate(open_backend(url, "ns"))
    assert isinstance(gate.lease("api", 3), Lease)
    assert isinstance(gate.lease("api", 3), Lease)
    assert gate.store_peaks(["api", "never"]) == {"api": 2, "never": 0}
    gate.close()
    other = open_backend(url, "ns")
    assert other.in_flight("api") == 0
    other.close()


def test_the_runtime_door_defers_everything_once_the_store_failed() -> None:
    backend = BreakableBackend()
    gate = StoreGate(backend)
    failures: list[str] = []
    gate.listen(on_release=lambda jobs: None, on_failure=failures.append)
    assert gate.try_acquire("api", 2) is None
    backend.broken = True
    assert gate.try_acquire("api", 2) == LONGEST_DEFER_SECONDS  # fail closed, never raises
    assert gate.try_acquire("other", 2) == LONGEST_DEFER_SECONDS
    assert failures == ["memory: gone"]  # told once
    gate.release("api")  # the store is gone: remembered, not raised
    gate.close()


def test_the_summary_says_what_went_wrong_and_names_what_did_not_run() -> None:
    from pytest_dynpool.limits_store import StoreReport, format_store_summary

    report = StoreReport(
        url="redis://127.0.0.1:1/0",
        namespace="ci",
        lease_seconds=10.0,
        peaks=[("api", 2, 2), ("slow", 1, None)],
        failure="redis://127.0.0.1:1/0: the Redis limits store failed: Connection refused",
        lost_leases=["api: its lease expired before it was renewed"],
        not_run=[f"test_a.py::test_{n}" for n in range(22)],
        waits=[0.5, 1.5],
    )
    lines = format_store_summary(report)
    assert lines[0] == "limits store: redis://127.0.0.1:1/0, namespace 'ci', leases of 10 s"
    assert lines[2].split() == ["api", "2", "2"]
    assert lines[3].split() == ["slow", "1", "?"]  # the store could not say
    assert "waits for the store: 2, longest 1.50 s, mean 1.00 s" in lines
    assert (
        "limits store failed: redis://127.0.0.1:1/0: the Redis limits store failed: "
        "Connection refused; dispatch stopped (fail closed)" in lines
    )
    assert (
        "warning: lease lost (api: its lease expired before it was renewed); "
        "the store may have let another in" in lines
    )
    assert "not run because the store failed: 22 items" in lines
    assert lines[-1] == "  ... and 2 more"
    assert "  test_a.py::test_19" in lines


def test_a_local_job_is_granted_without_the_store() -> None:
    # The pool-sized ``unmarked`` job is each process's own: no lease, no store call,
    # even while the store is lost (the process's scheduler is its cap).
    backend = BreakableBackend()
    gate = StoreGate(backend, local_jobs=["unmarked"])
    backend.broken = True
    assert [gate.try_acquire("unmarked", 1) for _ in range(3)] == [None, None, None]
    gate.release("unmarked")
    assert not gate.shares("unmarked")
    assert gate.shares("api")
    assert gate.try_acquire("api", 1) == LONGEST_DEFER_SECONDS  # a store job fails closed
    assert gate.failure is not None
    assert gate.local_peaks == {}
    backend.broken = False
    gate.close()
