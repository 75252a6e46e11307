"""Generated suites under ``pytest -n 2``: the same outcome per test as plain xdist, caps held.

The suites of ``suite_generator`` (package trees, a random fixture DAG of every scope,
xunit functions, parametrization, skips, xfails, failing setups and teardowns, random
``dynpool`` markers) run with ``-n 2`` twice: with dynpool on every worker and with
``-p no:dynpool``. Every phase of every test must have plain xdist's outcome; every
fixture instance is used only while set up in its process; the jobs' caps hold across
both processes (from the start and end events both write into one log). Session and
wider fixtures are per worker process under xdist, so their setup counts are not
compared, and neither is which unmarked test overlaps which: xdist runs one per worker.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings

from .suite_generator import Suite, assert_lifetimes, run, suites

pytest.importorskip("xdist")


def assert_caps_held_across_processes(
    events: list[tuple[str, str]], caps: dict[str, int], threads: int
) -> None:
    in_flight: Counter[str] = Counter()
    for position, (kind, tag) in enumerate(events):
        if kind not in ("enter", "exit"):
            continue
        key = tag.split("|", 1)[0]
        in_flight[key] += 1 if kind == "enter" else -1
        assert sum(in_flight.values()) <= threads, f"event {position}: above {threads} threads"
        if key == "unmarked":  # --dynpool-unmarked=pool: a pool-sized job in each worker
            assert in_flight[key] <= 2 * caps[key], f"event {position}: unmarked above 2 pools"
        elif key != "exclusive":
            assert in_flight[key] <= caps[key], f"event {position}: job {key} above its cap"
    assert not +in_flight, f"items never finished: {+in_flight}"


@settings(
    max_examples=5,  # two -n 2 runs each: about 15 s per example on a busy 2-core machine
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(suite=suites())
def test_generated_suites_under_xdist_match_plain_xdist(
    pytester: pytest.Pytester, suite: Suite
) -> None:
    assume(not suite.exitfirst)  # -x stops at a place that depends on timing under xdist
    suite.write(pytester.path)
    plain = run(pytester, "-n", "2", "-p", "no:dynpool")
    pooled = run(pytester, "-n", "2", *suite.args())
    assert plain.events, "the suite recorded nothing: the comparison would prove nothing"
    assert pooled.result.ret == plain.result.ret
    assert pooled.phases() == plain.phases()
    assert_lifetimes(plain.events)
    assert_lifetimes(pooled.events)
    # Each process runs an exclusive item alone, so at most its pool is in flight.
    assert_caps_held_across_processes(pooled.events, suite.caps, 2 * suite.workers)
