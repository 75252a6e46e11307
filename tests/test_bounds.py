"""The lower bound on its own: each term, and which one the summary names."""

from __future__ import annotations

import pytest

from pytest_dynpool.bounds import NOTHING_RAN, Bound, JobWork, job_bound, lower_bound
from pytest_dynpool.model import Job
from pytest_dynpool.summary import JobStats


def items(*seconds: float, prefix: str = "t.py::i") -> list[tuple[str, float]]:
    return [(f"{prefix}{n}", value) for n, value in enumerate(seconds)]


def test_the_pool_bounds_work_spread_over_all_workers() -> None:
    # 8 items of 1 s on 2 workers -> 4 s, though the job's cap 8 would allow 1 s
    bound = lower_bound(2, [JobWork("a", 2, items(*[1.0] * 8))])
    assert bound == Bound(4.0, "pool")
    assert bound.reason == "the pool"


def test_a_jobs_cap_bounds_its_work() -> None:
    # 4 items of 1 s capped at 1 -> 4 s, though 8 workers would take 0.5 s
    assert lower_bound(8, [JobWork("legacy", 1, items(*[1.0] * 4))]) == Bound(4.0, "cap", "legacy")


def test_a_time_weighted_cap_bounds_an_adaptive_job() -> None:
    # 6 s of work at an effective cap of 1.5 on average -> 4 s
    bound = lower_bound(8, [JobWork("api", 1.5, items(*[1.0] * 6))])
    assert bound == Bound(pytest.approx(4.0), "cap", "api")  # type: ignore[arg-type]
    assert bound.reason == "job api's cap"


def test_a_rate_bounds_the_starts_then_the_shortest_item_runs() -> None:
    # 60 items at 20/s with a burst of 2: the last starts after 2.9 s, then runs 0.05 s
    job = JobWork("search", 2, items(*[0.05] * 60), per_second=20.0, burst=2)
    bound = lower_bound(16, [job])
    assert bound.reason == "job search's rate"
    assert bound.seconds == pytest.approx(2.95)


def test_a_burst_as_large_as_the_job_leaves_no_rate_term() -> None:
    job = JobWork("search", 4, items(*[1.0] * 4), per_second=0.1, burst=4)
    assert lower_bound(4, [job]) == Bound(1.0, "pool")


def test_the_longest_item_is_named() -> None:
    job = JobWork("mixed", 4, [*items(*([0.05] * 40)), ("t.py::slow", 1.5)])
    bound = lower_bound(4, [job])
    assert bound == Bound(1.5, "item", "t.py::slow")
    assert bound.reason == "one item (t.py::slow)"


def test_the_largest_term_wins_across_jobs() -> None:
    fast = JobWork("fast", 4, items(*[0.02] * 160, prefix="f.py::"))
    slow = JobWork("slow", 1, items(0.6, 0.6, 0.6, prefix="s.py::"))
    bound = lower_bound(4, [fast, slow])
    assert bound.reason == "job slow's cap"
    assert bound.seconds == pytest.approx(1.8)


def test_a_tie_goes_to_the_pool() -> None:
    # one job whose cap is the pool: both terms are 2 s; the pool did its best
    assert lower_bound(4, [JobWork("a", 4, items(*[1.0] * 8))]) == Bound(2.0, "pool")


def test_nothing_ran() -> None:
    assert lower_bound(4, []) == NOTHING_RAN
    assert NOTHING_RAN.reason == "nothing ran"
    assert lower_bound(4, [JobWork("a", 1, [])]) == NOTHING_RAN


def test_a_jobs_own_bound_is_the_larger_of_its_cap_and_rate_terms() -> None:
    rated = JobWork("search", 2, items(*[0.05] * 60), per_second=20.0, burst=2)
    assert job_bound(rated) == Bound(pytest.approx(2.95), "rate", "search")  # type: ignore[arg-type]
    capped = JobWork("legacy", 1, items(*[1.0] * 4), per_second=100.0, burst=1)
    assert job_bound(capped) == Bound(4.0, "cap", "legacy")
    assert job_bound(JobWork("idle", 1, [])) is None


# Issue 14, an honest lower bound: time an item was blocked on its own job's limits
# (slots or tokens its job's other tests held) depends on the schedule; it is not work.


def test_own_waits_are_not_work_for_a_jobs_cap() -> None:
    # 3 s in flight, 1.5 s of it waiting for the job's slots: 1.5 s of work at cap 1
    job = JobWork("api", 1, items(1.0, 1.0, 1.0), waited=[0.0, 0.5, 1.0])
    assert lower_bound(8, [job]) == Bound(1.5, "cap", "api")


def test_own_waits_are_not_work_for_the_pool() -> None:
    # 4 s in flight on 2 workers, 2 s of it waiting: 1 s, not 2 s
    job = JobWork("api", 2, items(1.0, 1.0, 1.0, 1.0), waited=[1.0, 1.0, 0.0, 0.0])
    assert lower_bound(2, [job]) == Bound(1.0, "pool")


def test_the_longest_item_is_the_longest_once_its_own_waits_are_taken_out() -> None:
    # i0 was in flight longest (2 s) but waited 1.5 s of it: i1's 1 s is the longest work
    job = JobWork("api", 4, items(2.0, 1.0), waited=[1.5, 0.0])
    assert lower_bound(4, [job]) == Bound(1.0, "item", "t.py::i1")


def test_the_rate_term_runs_the_shortest_item_without_its_wait() -> None:
    # 3 starts at 1/s with a burst of 1: the last starts after 2 s, then works 0.1 s
    job = JobWork("search", 1, items(0.5, 0.5, 0.5), per_second=1.0, burst=1, waited=[0.4] * 3)
    bound = lower_bound(8, [job])
    assert bound.term == "rate"
    assert bound.seconds == pytest.approx(2.1)


def test_an_own_wait_longer_than_the_item_leaves_no_negative_work() -> None:
    job = JobWork("api", 1, items(1.0, 0.5), waited=[1.2, 0.0])
    assert job.work() == [("t.py::i0", 0.0), ("t.py::i1", 0.5)]


def test_job_stats_pass_each_items_own_waits_to_the_bound() -> None:
    stats = JobStats(Job("api", 2, 2, "test"))
    stats.record("t.py::a", 1.0, 0.25)
    stats.record("t.py::b", 1.0)
    stats.record("t.py::a", 1.0, 0.25)  # the same node id twice (a file given twice)
    work = stats.work(workers=4)
    assert (work.waited, stats.busy_seconds) == ([0.25, 0.0, 0.25], 3.0)
    assert job_bound(work) == Bound(pytest.approx(1.25), "cap", "api")  # type: ignore[arg-type]


# Issue 14, the example suite: a job's requests hold its cap's slots. Eight requests
# of 0.2 s through 3 slots take 0.6 s however they are arranged (some slot serves
# three in a row), more than their total over the slots (0.53 s) or any item.


def test_slot_uses_pack_into_the_jobs_cap_one_slot_serving_several_in_a_row() -> None:
    # 5 items of 0.25 s work each (a cap term of 0.42 s) made 8 requests of 0.2 s
    job = JobWork("reports", 3, items(*[0.25] * 5), slot_uses=[0.2] * 8, slots=3)
    bound = lower_bound(8, [job])
    assert bound == Bound(pytest.approx(0.6), "slots", "reports")  # type: ignore[arg-type]
    assert bound.reason == "job reports's slots"


def test_slot_uses_of_uneven_length_are_bounded_by_their_total_over_the_slots() -> None:
    # One long use: 3.0 s over 2 slots (1.5 s) beats the two shortest in a row (0.2 s)
    job = JobWork("api", 2, items(0.1), slot_uses=[2.6, 0.1, 0.1, 0.2], slots=2)
    assert job_bound(job) == Bound(pytest.approx(1.5), "slots", "api")  # type: ignore[arg-type]


def test_the_slots_are_the_jobs_cap_not_the_pools_size() -> None:
    # A cap-4 job on a 2-worker pool still sends 4 requests at once: 8 uses of 1 s -> 2 s
    job = JobWork("api", 2, items(1.0, 1.0), slot_uses=[1.0] * 8, slots=4)
    assert job_bound(job) == Bound(2.0, "slots", "api")


def test_job_stats_give_the_bound_their_slot_uses_and_the_full_cap() -> None:
    stats = JobStats(Job("api", 6, 6, "test"))
    stats.record("t.py::a", 1.0)
    stats.slot_uses.extend([0.5, 0.5])
    work = stats.work(workers=2)
    assert (work.cap, work.slots, list(work.slot_uses)) == (2, 6, [0.5, 0.5])


# The session's teardown: the pooled phase's last item does it once every other item has
# ended, so it follows whichever term is largest; it is not that item's work.


def test_the_sessions_teardown_follows_the_largest_term() -> None:
    # cap 1: 1 + 1 + (1 - 0.4) s of work, then 0.4 s of teardown by i2
    job = JobWork("api", 1, items(1.0, 1.0, 1.0))
    bound = lower_bound(8, [job], [("t.py::i2", 0.4)])
    assert bound == Bound(pytest.approx(3.0), "cap", "api", 0.4)  # type: ignore[arg-type]
    assert bound.reason == "job api's cap, then 0.40s of session teardown"


def test_the_sessions_teardown_is_not_counted_twice_in_the_item_that_did_it() -> None:
    # i0 was in flight 2 s, 1.5 s of it tearing the session down: its work is 0.5 s, so
    # i1's 1 s is the longest item, then 1.5 s of teardown (not 2 + 1.5)
    job = JobWork("api", 4, items(2.0, 1.0))
    bound = lower_bound(4, [job], [("t.py::i0", 1.5)])
    assert bound == Bound(2.5, "item", "t.py::i1", 1.5)


def test_the_shortest_of_several_processes_teardowns_follows_the_term() -> None:
    # Each xdist worker tears its own session down after its own items.
    one = JobWork("api", 2, items(1.0, prefix="a.py::i"))
    two = JobWork("web", 2, items(1.0, prefix="b.py::i"))
    bound = lower_bound(2, [one, two], [("a.py::i0", 0.5), ("b.py::i0", 0.25)])
    # items' work 0.5 and 0.75: the longest item, 0.75, then the shorter teardown
    assert bound == Bound(1.0, "item", "b.py::i0", 0.25)


def test_a_teardown_too_short_to_print_is_not_named() -> None:
    bound = lower_bound(1, [JobWork("api", 1, items(1.0))], [("t.py::i0", 0.001)])
    assert bound.reason == "the pool"  # a tie with the cap goes to the pool
