"""The scheduler on its own: no pytest session, no threads."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dynpool.order import Order
from pytest_dynpool.scheduler import CappedScheduler

from .scheduler_replay import FakeClock, drain, workloads


def test_job_needing_most_rounds_starts_first() -> None:
    # job 0: 2 items cap 2 (1 round); job 1: 3 items cap 1 (3 rounds)
    scheduler = CappedScheduler(workers=1, caps=[2, 1], job_of_item=[0, 0, 1, 1, 1])
    assert scheduler.next_dispatch() == 2


def test_ties_go_by_collection_order() -> None:
    scheduler = CappedScheduler(workers=2, caps=[1, 1], job_of_item=[1, 0])
    assert drain(scheduler) == [0, 1]


def test_cap_holds_and_completion_frees_a_slot() -> None:
    scheduler = CappedScheduler(workers=8, caps=[2], job_of_item=[0, 0, 0, 0])
    assert drain(scheduler) == [0, 1]
    scheduler.complete(0)
    assert drain(scheduler) == [2]
    assert scheduler.jobs[0].peak == 2


def test_pool_size_bounds_everything() -> None:
    scheduler = CappedScheduler(workers=3, caps=[8, 8], job_of_item=[0] * 5 + [1] * 5)
    assert len(drain(scheduler)) == 3
    assert scheduler.in_flight == 3
    assert scheduler.peak_in_flight == 3


@pytest.mark.parametrize(
    ("workers", "caps"), [(0, [1]), (1, [0]), (1, [-1])], ids=["no-workers", "cap-0", "cap-neg"]
)
def test_bad_sizes_are_rejected(workers: int, caps: list[int]) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        CappedScheduler(workers=workers, caps=caps, job_of_item=[0])


def test_completing_an_item_twice_is_an_error() -> None:
    scheduler = CappedScheduler(workers=1, caps=[1], job_of_item=[0])
    item = scheduler.next_dispatch()
    assert item is not None
    scheduler.complete(item)
    with pytest.raises(ValueError, match="nothing in flight"):
        scheduler.complete(item)


@settings(max_examples=200, deadline=None)
@given(workloads(), st.lists(st.integers(1, 10), min_size=1, max_size=40))
def test_invariants_while_effective_caps_move(
    workload: tuple[int, list[int], list[int], int], new_caps: list[int]
) -> None:
    """Adaptive jobs: a dispatch never goes above the cap of that moment; still work-conserving."""
    workers, caps, job_of_item, seed = workload
    rng = random.Random(seed)
    current = list(caps)
    scheduler = CappedScheduler(workers, caps, job_of_item)
    in_flight: list[int] = []
    dispatched: list[int] = []
    changes = iter(new_caps)
    while True:
        dispatched_now = drain(scheduler)
        dispatched += dispatched_now
        in_flight += dispatched_now
        per_job = [0] * len(caps)
        for item in in_flight:
            per_job[job_of_item[item]] += 1
        for item in dispatched_now:
            job = job_of_item[item]
            assert per_job[job] <= current[job]
        assert len(in_flight) <= workers
        # Stale heap entries are dropped lazily, but never pile up beyond O(jobs).
        heaps = (scheduler._heap, scheduler._unmeasured, scheduler._unmeasured_rated)
        assert sum(map(len, heaps)) <= 2 * (4 * len(caps) + 65)
        if len(in_flight) < workers:
            for job in range(len(caps)):
                waiting = sum(
                    1 for item, j in enumerate(job_of_item) if j == job and item not in dispatched
                )
                assert waiting == 0 or per_job[job] >= current[job]
        if not in_flight:
            break
        change = next(changes, None)
        if change is not None:
            job = rng.randrange(len(caps))
            current[job] = change
            scheduler.set_cap(job, change)
            continue
        finished = in_flight.pop(rng.randrange(len(in_flight)))
        scheduler.complete(finished)
    assert sorted(dispatched) == list(range(len(job_of_item)))
    assert scheduler.pending == 0


def test_collection_order_follows_the_collection_where_caps_allow() -> None:
    job_of_item = [0, 0, 1, 1, 0, 2]
    scheduler = CappedScheduler(1, [1, 1, 1], job_of_item, order=Order.COLLECTION)
    started = []
    while (item := scheduler.next_dispatch()) is not None:
        started.append(item)
        scheduler.complete(item)
    assert started == [0, 1, 2, 3, 4, 5]
    # Job 0 at its cap: the next collected item of another job goes.
    scheduler = CappedScheduler(2, [1, 1, 1], job_of_item, order=Order.COLLECTION)
    assert drain(scheduler) == [0, 2]


def test_mean_cap_weighs_each_cap_by_how_long_it_held() -> None:
    now = [0.0]
    scheduler = CappedScheduler(8, [4, 16], [0] * 6, clock=lambda: now[0])
    now[0] = 10.0
    scheduler.set_cap(0, 2)
    now[0] = 20.0
    assert scheduler.mean_cap(0) == pytest.approx(3.0)
    assert scheduler.mean_cap(1) == pytest.approx(8.0)  # bounded by the pool


def test_mean_cap_counts_items_in_flight_above_a_lowered_cap() -> None:
    now = [0.0]
    scheduler = CappedScheduler(8, [4], [0] * 6, clock=lambda: now[0])
    started = drain(scheduler)
    assert len(started) == 4
    scheduler.set_cap(0, 1)  # four stay in flight: the job is allowed four until they end
    now[0] = 10.0
    for item in started:
        scheduler.complete(item)
    now[0] = 20.0
    assert scheduler.mean_cap(0) == pytest.approx((4 * 10 + 1 * 10) / 20)


@st.composite
def timed_workloads(draw: st.DrawFn) -> tuple[int, list[int], list[int], list[float | None], int]:
    workers, caps, job_of_item, seed = draw(workloads())
    known = draw(
        st.lists(
            st.none() | st.floats(0.0, 100.0), min_size=len(job_of_item), max_size=len(job_of_item)
        )
    )
    return workers, caps, job_of_item, known, seed


@settings(max_examples=500, deadline=None)
@given(timed_workloads(), st.sampled_from(list(Order)))
def test_invariants_under_random_completion_order(
    workload: tuple[int, list[int], list[int], list[float | None], int], order: Order
) -> None:
    """Never above a cap or the pool, never idle while work is runnable, each item once.

    In every order, with some items' durations known and others not.
    """
    workers, caps, job_of_item, known, seed = workload
    rng = random.Random(seed)
    scheduler = CappedScheduler(workers, caps, job_of_item, order=order, known_seconds=known)
    in_flight: list[int] = []
    dispatched: set[int] = set()
    while True:
        for item in drain(scheduler):
            assert item not in dispatched
            dispatched.add(item)
            in_flight.append(item)
        per_job = [0] * len(caps)
        for item in in_flight:
            per_job[job_of_item[item]] += 1
        assert all(count <= cap for count, cap in zip(per_job, caps, strict=True))
        assert len(in_flight) <= workers
        # Stale heap entries are dropped lazily, but never pile up beyond O(jobs).
        heaps = (scheduler._heap, scheduler._unmeasured, scheduler._unmeasured_rated)
        assert sum(map(len, heaps)) <= 2 * (4 * len(caps) + 65)
        if len(in_flight) < workers:
            for job, cap in enumerate(caps):
                waiting = any(
                    j == job and item not in dispatched for item, j in enumerate(job_of_item)
                )
                assert not waiting or per_job[job] == cap
        if not in_flight:
            break
        item = in_flight.pop(rng.randrange(len(in_flight)))
        scheduler.complete(item, rng.choice([None, known[item], rng.uniform(0.0, 10.0)]))
    assert sorted(dispatched) == list(range(len(job_of_item)))
    assert scheduler.pending == 0
    assert scheduler.in_flight == 0


def test_a_deferred_job_waits_while_others_run_and_comes_back_on_time() -> None:
    clock = FakeClock()
    scheduler = CappedScheduler(workers=4, caps=[2, 2], job_of_item=[0, 0, 1, 1], clock=clock)
    scheduler.defer(0, 5.0)
    assert drain(scheduler) == [2, 3]
    assert scheduler.seconds_until_ready() == 5.0
    clock.now = 5.0
    assert drain(scheduler) == [0, 1]
    assert scheduler.seconds_until_ready() is None


def test_a_job_deferred_until_resumed_waits_for_resume() -> None:
    scheduler = CappedScheduler(workers=2, caps=[1], job_of_item=[0, 0])
    scheduler.defer(0, None)
    assert scheduler.next_dispatch() is None
    assert scheduler.seconds_until_ready() is None  # nothing to wait for on the clock
    scheduler.resume(0)
    assert drain(scheduler) == [0]


def test_put_back_undoes_a_dispatch_exactly() -> None:
    clock = FakeClock()
    scheduler = CappedScheduler(workers=4, caps=[2, 1], job_of_item=[0, 0, 1], clock=clock)
    item = scheduler.next_dispatch()
    assert item is not None
    job = scheduler.job_of(item)
    scheduler.put_back(item, 1.0)  # the slot gate refused it
    assert (scheduler.in_flight, scheduler.pending) == (0, 3)
    assert (scheduler.peak_in_flight, scheduler.job_peak(job)) == (0, 0)
    others = drain(scheduler)
    assert all(scheduler.job_of(other) != job for other in others)
    clock.now = 1.0
    assert drain(scheduler)[0] == item  # back at the head of its job
    with pytest.raises(ValueError, match="last one dispatched"):
        scheduler.put_back(others[0], None)


def test_a_stale_park_entry_does_not_end_a_later_defer() -> None:
    clock = FakeClock()
    scheduler = CappedScheduler(workers=2, caps=[1], job_of_item=[0, 0], clock=clock)
    scheduler.defer(0, 1.0)
    scheduler.resume(0)
    scheduler.defer(0, 10.0)
    clock.now = 2.0
    assert scheduler.next_dispatch() is None
    clock.now = 10.0
    assert scheduler.next_dispatch() == 0
