"""The duration order in the pure scheduler: estimates, learning during the run, replays."""

from __future__ import annotations

import heapq
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_dynpool.estimates import UNKNOWN_SECONDS, Estimates, RunningMedian
from pytest_dynpool.order import Order
from pytest_dynpool.scheduler import CappedScheduler

from .scheduler_replay import FakeClock, drain, makespan, workloads


def test_duration_order_starts_a_long_item_collected_last_first() -> None:
    durations = [0.05] * 40 + [1.5]
    job_of_item = [0] * 41
    scheduler = CappedScheduler(4, [4], job_of_item, known_seconds=durations)
    assert scheduler.next_dispatch() == 40
    assert makespan(4, [4], durations, job_of_item, Order.DURATION) == pytest.approx(1.5)
    # By count, or with nothing known, the long item starts last: LB plus that item.
    assert makespan(4, [4], durations, job_of_item, Order.COUNT) == pytest.approx(2.0)
    assert makespan(4, [4], durations, job_of_item, Order.DURATION, known=False) == (
        pytest.approx(2.0)
    )


def test_duration_order_starts_a_small_slow_job_before_a_big_fast_one() -> None:
    durations = [0.02] * 160 + [0.6] * 3
    job_of_item = [0] * 160 + [1] * 3
    scheduler = CappedScheduler(4, [4, 1], job_of_item, known_seconds=durations)
    assert scheduler.next_dispatch() == 160
    assert makespan(4, [4, 1], durations, job_of_item, Order.DURATION) == pytest.approx(1.8)
    assert makespan(4, [4, 1], durations, job_of_item, Order.COUNT) > 2.5


def test_unknown_items_get_their_jobs_median_else_the_longest_seen() -> None:
    estimates = Estimates(2, [0, 0, 0, 0, 1, 1], [1.0, 3.0, 10.0, None, None, None])
    assert (estimates.per_item(0), estimates.per_item(1)) == (3.0, 10.0)
    assert estimates.remaining(0) == 1.0 + 3.0 + 10.0 + 3.0
    assert Estimates(2, [0, 1], [None, None]).per_item(1) == UNKNOWN_SECONDS
    # Fewer known figures than items (new items at the end): unknown.
    assert Estimates(1, [0, 0, 0], [2.0]).remaining(0) == 6.0


def test_a_measured_duration_moves_its_jobs_median_and_the_longest() -> None:
    estimates = Estimates(3, [0, 0, 1, 1, 2], [])
    estimates.learn(0, 4.0)
    assert (estimates.per_item(0), estimates.per_item(1)) == (4.0, 4.0)  # job 1: the longest
    estimates.learn(1, 1.0)
    estimates.learn(1, 2.0)
    estimates.learn(0, 6.0)
    assert [estimates.per_item(job) for job in range(3)] == [5.0, 1.5, 6.0]


def test_each_unknown_function_starts_one_item_early() -> None:
    # One job, two functions (groups): 0-3 and 4; the first of each goes first, then the rest.
    estimates = Estimates(1, [0] * 5, [], group_of_item=[0, 0, 0, 0, 1])
    assert estimates.probe_rank(0) == 0.0
    assert [estimates.take(0) for _ in range(2)] == [0, 4]
    assert estimates.probe_rank(0) == 2.0
    assert [estimates.take(0) for _ in range(3)] == [1, 2, 3]


@settings(deadline=None)
@given(st.lists(st.floats(0.0, 1e6), min_size=1, max_size=50))
def test_running_median_is_the_median(values: list[float]) -> None:
    median = RunningMedian()
    for count, value in enumerate(values, start=1):
        median.add(value)
        assert len(median) == count
        assert median.median() == pytest.approx(statistics.median(values[:count]))


def test_a_slow_job_found_out_by_its_first_item_goes_first_on_a_first_run() -> None:
    """Nothing known: each job starts one item first, and what it took re-keys its job."""
    durations = [0.02] * 160 + [0.6] * 3
    job_of_item = [0] * 160 + [1] * 3
    scheduler = CappedScheduler(4, [4, 1], job_of_item)
    assert sorted(drain(scheduler)) == [0, 1, 2, 160]  # the slow job's first item among them
    first_run = makespan(4, [4, 1], durations, job_of_item, Order.DURATION, known=False)
    assert first_run == pytest.approx(1.8)  # as if its durations had been known
    assert makespan(4, [4, 1], durations, job_of_item, Order.COUNT) > 2.5
    blind = makespan(4, [4, 1], durations, job_of_item, Order.DURATION, known=False, learn=False)
    assert blind == pytest.approx(2.1)  # the early first item alone is not enough: learning is


def test_a_completion_re_keys_its_job() -> None:
    # Two unknown jobs of two items, one worker: each starts one item (0, then 2); job 1's
    # took 5 s against job 0's 1 s, so job 1's last item goes before job 0's.
    scheduler = CappedScheduler(1, [1, 1], [0, 0, 1, 1])
    assert scheduler.next_dispatch() == 0
    scheduler.complete(0, 1.0)
    assert scheduler.next_dispatch() == 2
    scheduler.complete(2, 5.0)
    assert scheduler.next_dispatch() == 3
    # Not told the durations, the count order's tie (collection order) decides.
    blind = CappedScheduler(1, [1, 1], [0, 0, 1, 1])
    for item in (0, 2):
        assert blind.next_dispatch() == item
        blind.complete(item)
    assert blind.next_dispatch() == 1


def test_a_job_of_new_items_is_weighed_by_the_runs_median() -> None:
    # job 0: two known 1 s items; job 1: four new items, expected 1 s each -> 4 s of work.
    scheduler = CappedScheduler(
        1, [1, 1], [0, 0, 1, 1, 1, 1], known_seconds=[1.0, 1.0, None, None, None, None]
    )
    assert scheduler.next_dispatch() == 2


@settings(max_examples=200, deadline=None)
@given(workloads(), st.lists(st.floats(0.0, 10.0), min_size=60, max_size=60))
def test_with_nothing_known_each_job_starts_one_item_first(
    workload: tuple[int, list[int], list[int], int], seconds: list[float]
) -> None:
    """A first run: every job starts its first item, most items per slot first, before
    any job starts a second, whatever the completions teach in between."""
    workers, caps, job_of_item, seed = workload
    scheduler = CappedScheduler(workers, caps, job_of_item, order=Order.DURATION)
    rng = random.Random(seed)
    started: list[int] = []
    in_flight: list[int] = []
    while True:
        batch = drain(scheduler)
        started += batch
        in_flight += batch
        if not in_flight:
            break
        item = in_flight.pop(rng.randrange(len(in_flight)))
        scheduler.complete(item, seconds[item])
    jobs = sorted(set(job_of_item))
    first_jobs = [job_of_item[item] for item in started[: len(jobs)]]
    size = {job: job_of_item.count(job) / min(caps[job], workers) for job in jobs}
    by_count = sorted(jobs, key=lambda job: (-size[job], job_of_item.index(job)))
    assert first_jobs == by_count
    assert sorted(started) == list(range(len(job_of_item)))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6),
    st.lists(st.tuples(st.integers(0, 3), st.floats(0.01, 5.0)), min_size=1, max_size=30),
    st.lists(st.integers(1, 6), min_size=4, max_size=4),
)
def test_duration_order_stays_within_the_list_scheduling_bound(
    workers: int, items: list[tuple[int, float]], caps: list[int]
) -> None:
    """Work-conserving: the last item starts once the pool or its job was saturated, so
    the run ends within total / N + work_j / k_j + its duration (at most 3x LB)."""
    job_of_item = [job for job, _ in items]
    durations = [seconds for _, seconds in items]
    span = makespan(workers, caps, durations, job_of_item, Order.DURATION)
    per_job = max(
        sum(d for d, j in zip(durations, job_of_item, strict=True) if j == job)
        / min(caps[job], workers)
        for job in set(job_of_item)
    )
    bound = max(sum(durations) / workers, per_job, max(durations))
    assert bound - 1e-9 <= span <= sum(durations) / workers + per_job + max(durations) + 1e-9


def test_put_back_restores_the_jobs_expected_work() -> None:
    # job 0: 3 s in one item; job 1: two items of 1 s. Job 0 first; put back, it stays first.
    scheduler = CappedScheduler(1, [1, 1], [0, 1, 1], known_seconds=[3.0, 1.0, 1.0])
    assert scheduler.next_dispatch() == 0
    scheduler.put_back(0, None)
    assert scheduler.next_dispatch() == 1  # job 0 is deferred: the other job goes
    scheduler.complete(1)
    scheduler.resume(0)
    assert scheduler.next_dispatch() == 0  # 3 s of work again against job 1's 1 s


def test_a_job_whose_first_item_runs_long_is_found_out_before_it_ends() -> None:
    """Nothing known; job 0 (six items, cap 2) goes first by count. Job 1's first item has
    run 10 ms when job 0's first ends in 10 ms: still running, it is expected to take
    20 ms, so job 1's next item starts before job 0's."""
    clock = FakeClock()
    scheduler = CappedScheduler(3, [2, 2], [0] * 6 + [1] * 4, clock=clock)
    assert drain(scheduler) == [0, 6, 1]
    clock.now = 0.01
    scheduler.complete(0, 0.01)
    assert scheduler.next_dispatch() == 7
    # Control: job 1's first item started at 8 ms, so it has run 2 ms only: job 0 goes on.
    clock = FakeClock()
    scheduler = CappedScheduler(3, [2, 2], [0] * 6 + [1] * 4, clock=clock)
    scheduler.defer(1, 0.008)
    assert drain(scheduler) == [0, 1]
    clock.now = 0.008
    assert drain(scheduler) == [6]
    clock.now = 0.01
    scheduler.complete(0, 0.01)
    assert scheduler.next_dispatch() == 2
    clock.now = 0.02  # now it has run 12 ms: job 1 goes first
    scheduler.complete(1, 0.01)
    assert scheduler.next_dispatch() == 7


def test_a_running_item_is_looked_at_until_it_ends_or_is_put_back() -> None:
    estimates = Estimates(2, [0, 0, 1], [])
    estimates.learn(1, 1.0)  # the longest measured: 1 s
    estimates.started(0, 0, now=0.0)
    assert estimates.look(0.4) == []  # 0.4 s so far says 0.8 s: no more than the longest
    assert estimates.look(0.6) == [0]
    assert estimates.per_item(0) == pytest.approx(1.2)  # RUNNING_FACTOR x 0.6 s
    assert estimates.runs_long(0)
    estimates.stopped(0, 0)
    assert estimates.look(100.0) == []  # ended: no more looks
    assert estimates.per_item(0) == pytest.approx(1.2)  # what it said stays
    estimates.learn(0, 0.1)
    assert (estimates.per_item(0), estimates.runs_long(0)) == (0.1, False)  # measured: its median


def test_a_job_of_few_long_items_starts_them_together() -> None:
    """A job's drain is at least its longest waiting item: 6 items of 600 ms at cap 3 need
    two rounds, which the job's work per slot (1.2 s) says, but two items left of three
    slots do not (0.4 s per slot, yet 0.6 s). Started together, the rounds end at LB."""
    durations = [0.02] * 160 + [0.6] * 6
    job_of_item = [0] * 160 + [1] * 6
    lower = (sum(durations)) / 4  # 1.7 s: the pool
    assert makespan(4, [4, 3], durations, job_of_item, Order.DURATION) == pytest.approx(lower)
    first_run = makespan(4, [4, 3], durations, job_of_item, Order.DURATION, known=False)
    assert first_run == pytest.approx(lower)
    assert makespan(4, [4, 3], durations, job_of_item, Order.COUNT) > lower + 0.25


@settings(max_examples=300, deadline=None)
@given(workloads(), st.lists(st.floats(0.0, 2.0), min_size=60, max_size=60))
def test_invariants_while_running_items_are_looked_at(
    workload: tuple[int, list[int], list[int], int], seconds: list[float]
) -> None:
    """A first run on a clock that moves: items end at their own time, so never-measured
    jobs are re-keyed by their running items. Caps and the pool hold, no worker idles while
    work is runnable, each item starts once, and the looks stay O(jobs)."""
    workers, caps, job_of_item, seed = workload
    rng = random.Random(seed)
    clock = FakeClock()
    scheduler = CappedScheduler(workers, caps, job_of_item, clock=clock)
    ends: list[tuple[float, int]] = []
    started_at: dict[int, float] = {}
    while True:
        for item in drain(scheduler):
            assert item not in started_at
            started_at[item] = clock.now
            heapq.heappush(ends, (clock.now + seconds[item], item))
        per_job = [0] * len(caps)
        for _, item in ends:
            per_job[job_of_item[item]] += 1
        assert all(count <= cap for count, cap in zip(per_job, caps, strict=True))
        assert len(ends) <= workers
        if len(ends) < workers:
            for job, cap in enumerate(caps):
                waiting = any(j == job and i not in started_at for i, j in enumerate(job_of_item))
                assert not waiting or per_job[job] == cap
        estimates = scheduler._estimates
        assert estimates is not None
        assert len(estimates._looks) <= 2 * len(caps) + 65
        if not ends:
            break
        clock.now, item = heapq.heappop(ends)
        # Now and then a completion without a measurement (a timed-out item).
        scheduler.complete(item, None if rng.random() < 0.2 else clock.now - started_at[item])
    assert sorted(started_at) == list(range(len(job_of_item)))
    assert scheduler.pending == 0
