"""The controller's summary pieces under -n: figures from its reports, peaks from the store."""

from __future__ import annotations

from pytest_dynpool.model import Job
from pytest_dynpool.summary import JobStats, Outcome, RunStats
from pytest_dynpool.xdist_channel import NO_JOB, CollectedPlan, JobRecord
from pytest_dynpool.xdist_summary import ReportedItems, apply_store_peaks, stats_from_reports

PLAN = CollectedPlan(
    jobs=[JobRecord("api", 2, None), JobRecord("slow", 1, 0.5)],
    job_of_item=[0, 0, 0, NO_JOB, 1, 1],
)
COLLECTION = ["t::a0", "t::a1", "t::a2", "t::plain", "t::s0", "t::s1"]


def test_an_interrupted_runs_table_counts_what_the_controller_received() -> None:
    reported = ReportedItems()
    reported.add("t::a0", None, False, 0.25)  # setup passed
    reported.add("t::a0", Outcome.PASSED, False, 0.5)
    reported.add("t::a1", Outcome.FAILED, False, 1.0)
    reported.started.add("t::s0")  # started, never reported an outcome
    reported.add("t::plain", Outcome.PASSED, False, 0.1)
    stats = stats_from_reports(PLAN, COLLECTION, reported, workers=4)
    api, slow = stats.jobs
    assert (api.items, api.outcomes, api.busy_seconds) == (
        3,
        {Outcome.PASSED: 1, Outcome.FAILED: 1},
        1.75,
    )
    assert slow.outcomes == {Outcome.INTERRUPTED: 1}
    assert slow.job.rate is not None
    assert slow.job.rate.per_second == 0.5
    assert stats.exclusive_items == 1
    assert stats.not_started == 2  # a2 and s1
    assert (api.peak_in_flight, slow.peak_in_flight) == (2, 1)  # at most, until the store says
    apply_store_peaks(stats, {"api": 1})
    assert (api.peak_in_flight, slow.peak_in_flight) == (1, 1)


def test_the_smaller_of_the_store_peak_and_the_workers_sum_is_shown() -> None:
    # A store shared with other runs may count their leases: both are upper bounds.
    stats = RunStats(workers=8, jobs=[JobStats(Job("api", 4, 4, "test"), peak_in_flight=2)])
    apply_store_peaks(stats, {"api": 4})
    assert stats.jobs[0].peak_in_flight == 2
    apply_store_peaks(stats, {"api": 1})
    assert stats.jobs[0].peak_in_flight == 1


def test_the_workers_timings_and_waits_reach_the_merged_lower_bound() -> None:
    """Each worker's item times and own-job waits survive the trip to the controller."""
    from pytest_dynpool.xdist_stats import merge, stats_to_dict

    def worker(timings: list[tuple[str, float, float]], peak: int) -> RunStats:
        job = JobStats(Job("api", 2, 2, "test"), items=len(timings), peak_in_flight=peak)
        for node_id, seconds, waited in timings:
            job.record(node_id, seconds, waited)
        return RunStats(workers=4, jobs=[job], pool_peak_in_flight=peak)

    one = worker([("t::a0", 1.0, 0.0), ("t::a1", 1.0, 0.5)], peak=2)
    two = worker([("t::a2", 2.0, 1.0)], peak=1)
    one.jobs[0].slot_uses.extend([0.25, 0.25])  # requests through the store's shared slots
    two.jobs[0].slot_uses.append(0.5)
    merged = merge([("gw0", stats_to_dict(one)), ("gw1", stats_to_dict(two))]).stats
    (api,) = merged.jobs
    assert api.timings == [("t::a0", 1.0), ("t::a1", 1.0), ("t::a2", 2.0)]
    assert api.waited == [0.0, 0.5, 1.0]
    assert api.slot_uses == [0.25, 0.25, 0.5]
    assert api.busy_seconds == 4.0
    bound = merged.bound()
    assert (bound.term, bound.subject) == ("cap", "api")
    assert bound.seconds == (1.0 + 0.5 + 1.0) / 2  # work without the waits, over the cap
    # Both workers peaked at different times: no more than the job's own peak was in flight.
    apply_store_peaks(merged, {"api": 2})
    assert merged.pool_peak_in_flight == 2


def test_each_workers_session_teardown_reaches_the_merged_bound_unless_one_is_missing() -> None:
    from pytest_dynpool.xdist_stats import merge, stats_to_dict

    def worker(node_id: str, teardown: float | None) -> RunStats:
        job = JobStats(Job("api", 2, 2, "test"), items=1, peak_in_flight=1)
        job.record(node_id, 1.0)
        stats = RunStats(workers=2, jobs=[job], pool_peak_in_flight=1)
        if teardown is not None:
            stats.session_teardowns = [(node_id, teardown)]
        return stats

    idle = RunStats(workers=2, jobs=[JobStats(Job("api", 2, 2, "test"))])  # ran nothing
    both = merge(
        [
            ("gw0", stats_to_dict(worker("t::a", 0.5))),
            ("gw1", stats_to_dict(worker("t::b", 0.25))),
            ("gw2", stats_to_dict(idle)),
        ]
    ).stats
    assert both.session_teardowns == [("t::a", 0.5), ("t::b", 0.25)]
    assert both.bound().then == 0.25
    one_unknown = merge(
        [("gw0", stats_to_dict(worker("t::a", 0.5))), ("gw1", stats_to_dict(worker("t::b", None)))]
    ).stats
    assert one_unknown.session_teardowns == []
    assert one_unknown.bound().then == 0.0
