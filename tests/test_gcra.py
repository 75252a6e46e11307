"""GCRA on a fake clock: bursts, spacing, refusals that change nothing, windows and span."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_dynpool.backends.gcra import GcraLimiter, gcra_step


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_greedy(per_second: float, burst: int, count: int) -> list[float]:
    """Times at which ``count`` greedy callers get their tokens (each sleeps as told)."""
    clock = FakeClock()
    limiter = GcraLimiter(clock)
    granted: list[float] = []
    while len(granted) < count:
        token = limiter.take("job", per_second, burst)
        assert token.at == clock.now  # the limiter's own clock at the decision
        if token.wait:
            clock.now += token.wait
        else:
            granted.append(token.at)
    return granted


def test_a_full_burst_then_one_per_interval() -> None:
    clock = FakeClock()
    limiter = GcraLimiter(clock)
    assert [limiter.take("job", 10.0, 3).wait for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("job", 10.0, 3).wait == pytest.approx(0.1)
    clock.now += 0.1
    assert limiter.take("job", 10.0, 3).wait == 0.0
    assert limiter.take("job", 10.0, 3).wait == pytest.approx(0.1)


def test_a_refusal_leaves_the_tat_alone() -> None:
    first = gcra_step(None, 0.0, 1.0, 1)
    assert first.wait == 0.0
    assert first.tat == 1.0
    refused = gcra_step(first.tat, 0.25, 1.0, 1)
    assert refused.wait == pytest.approx(0.75)
    assert refused.tat == first.tat


def test_an_idle_job_saves_up_no_more_than_its_burst() -> None:
    clock = FakeClock()
    limiter = GcraLimiter(clock)
    limiter.take("job", 1.0, 2)
    clock.now += 3600.0
    assert [limiter.take("job", 1.0, 2).wait for _ in range(3)][2] > 0.0


def test_jobs_have_their_own_tat() -> None:
    limiter = GcraLimiter(FakeClock())
    assert limiter.take("a", 1.0, 1).wait == 0.0
    assert limiter.take("b", 1.0, 1).wait == 0.0
    assert limiter.take("a", 1.0, 1).wait > 0.0


@given(
    per_second=st.sampled_from([0.5, 1.0, 3.0, 20.0, 50.0]),
    burst=st.integers(1, 10),
    count=st.integers(1, 120),
)
def test_span_and_every_one_second_window(per_second: float, burst: int, count: int) -> None:
    granted = run_greedy(per_second, burst, count)
    span = granted[-1] - granted[0]
    assert span == pytest.approx(max(0, count - burst) / per_second, abs=1e-6)
    for start in granted:  # a window that starts at a grant holds the most grants
        in_window = sum(1 for time in granted if start <= time < start + 1.0)
        assert in_window <= per_second + burst
