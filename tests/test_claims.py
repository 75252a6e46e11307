"""Item claims for the xdist balance: the SQLite store, the gate, the scheduler, the setup tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_dynpool.backends import TAKEN, ClaimingBackend, Lease
from pytest_dynpool.backends.claims import StoreClaims
from pytest_dynpool.backends.gate import StoreGate
from pytest_dynpool.backends.sqlite import SqliteBackend
from pytest_dynpool.scheduler import CappedScheduler

_OPEN: list[SqliteBackend] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    """Every store a test opened is closed (Python 3.13 warns of an unclosed connection)."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def _store(tmp_path: Path) -> SqliteBackend:
    store = SqliteBackend(str(tmp_path / "limits.db"), "ns", 10.0)
    _OPEN.append(store)
    return store


def test_an_item_is_claimed_once_with_its_slot(tmp_path: Path) -> None:
    a, b = _store(tmp_path), _store(tmp_path)
    assert isinstance(a, ClaimingBackend)
    lease = a.claim_and_acquire("run", 3, "gw0", "job", 2)
    assert isinstance(lease, Lease)
    assert b.claim_and_acquire("run", 3, "gw1", "job", 2) is TAKEN
    assert b.in_flight("job") == 1  # a refused claim takes no slot
    assert isinstance(b.claim_and_acquire("other-run", 3, "gw1", "job", 2), Lease)
    a.close()
    b.close()


def test_no_slot_leaves_the_item_unclaimed(tmp_path: Path) -> None:
    a, b = _store(tmp_path), _store(tmp_path)
    assert isinstance(a.claim_and_acquire("run", 0, "gw0", "job", 1), Lease)
    assert b.claim_and_acquire("run", 1, "gw1", "job", 1) is None  # the job is full
    assert isinstance(a.acquire("other", 1), Lease)
    held = a.claim_and_acquire("run", 1, "gw0", "other", 2)
    assert isinstance(held, Lease)  # item 1 was still free to claim


def test_steal_takes_the_first_unclaimed_item_whose_job_has_a_slot(tmp_path: Path) -> None:
    a, b = _store(tmp_path), _store(tmp_path)
    assert isinstance(a.claim_and_acquire("run", 5, "gw0", "full", 1), Lease)
    candidates = [(5, "full", 1), (6, "full", 1), (7, "free", 2), (8, "free", 2)]
    found = b.steal("run", "gw1", candidates)
    assert found.item == 7
    assert isinstance(found.lease, Lease)
    assert found.left
    assert a.claim_and_acquire("run", 7, "gw0", "free", 2) is TAKEN
    found = b.steal("run", "gw1", candidates)
    assert found.item == 8
    found = b.steal("run", "gw1", candidates)
    assert found.item is None
    assert found.left
    assert isinstance(a.claim_and_acquire("run", 6, "gw0", "other", 1), Lease)
    found = b.steal("run", "gw1", candidates)
    assert found == type(found)(None, None, left=False, claimed=(5, 6, 7, 8))


def test_unclaim_frees_only_the_named_claimer_and_forget_drops_the_run(tmp_path: Path) -> None:
    a = _store(tmp_path)
    for item, claimer in ((1, "gw0"), (2, "gw1")):
        assert isinstance(a.claim_and_acquire("run", item, claimer, f"j{item}", 5), Lease)
    a.unclaim("run", [1, 2], "gw0")
    assert isinstance(a.claim_and_acquire("run", 1, "gw2", "j1", 5), Lease)
    assert a.claim_and_acquire("run", 2, "gw2", "j2", 5) is TAKEN
    a.forget_run("run")
    assert isinstance(a.claim_and_acquire("run", 2, "gw2", "j2", 5), Lease)


def test_store_claims_count_drops_and_steals_and_give_slots_back(tmp_path: Path) -> None:
    gates = [StoreGate(_store(tmp_path)) for _ in range(2)]
    mine = StoreClaims(gates[0], _backend(gates[0]), "run", "gw0", [10, 11, 12], [(2, "j", 4)])
    theirs = StoreClaims(gates[1], _backend(gates[1]), "run", "gw1", [12, 11, 10], [])
    assert mine.held_back == frozenset({2})
    assert not mine.exhausted
    assert theirs.try_claim(0, "j", 4) is None  # item 12, of gw1's share
    assert mine.steal() is None
    assert mine.exhausted
    assert mine.try_claim(1, "j", 4) is None  # item 11
    assert theirs.try_claim(1, "j", 4) is TAKEN
    assert theirs.dropped == [1]
    assert mine.stolen == []
    for gate in gates:
        gate.release("j")
    assert gates[0].backend.in_flight("j") == 0
    for gate in gates:
        gate.close()


def _backend(gate: StoreGate) -> ClaimingBackend:
    assert isinstance(gate.backend, ClaimingBackend)
    return gate.backend


def test_held_back_items_start_only_when_stolen_and_a_drop_frees_the_slot() -> None:
    scheduler = CappedScheduler(
        workers=4, caps=[1, 4], job_of_item=[0, 0, 1, 1], held_back=frozenset({3})
    )
    assert scheduler.pending == 3
    started = {scheduler.next_dispatch(), scheduler.next_dispatch()}
    assert started == {0, 2}  # job 0 is at its cap of 1: item 1 waits
    assert scheduler.next_dispatch() is None
    scheduler.complete(0)
    assert scheduler.next_dispatch() == 1
    scheduler.drop(1)  # another worker claimed it: job 0's slot is free at once
    assert scheduler.job_peak(0) == 1
    assert scheduler.in_flight == 1
    scheduler.start_held(3)
    assert scheduler.in_flight == 2
    assert scheduler.job_peak(1) == 2
    assert scheduler.pending == 0


def test_a_dropped_item_frees_its_job_for_the_next_one() -> None:
    scheduler = CappedScheduler(workers=2, caps=[1], job_of_item=[0, 0, 0])
    item = scheduler.next_dispatch()
    assert item is not None
    scheduler.drop(item)
    assert scheduler.next_dispatch() is not None  # the job was offered again
    with pytest.raises(ValueError, match="not the last one dispatched"):
        scheduler.drop(item)
