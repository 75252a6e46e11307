"""The CPU-bound gauge on fake clocks: when fewer workers take items, and when all do again."""

from __future__ import annotations

import sys

import pytest

from pytest_dynpool.runtime import cpu_bound
from pytest_dynpool.runtime.cpu_bound import CpuBoundGauge, SwitchInterval

from .conftest import assert_no_worker_left


class Clocks:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def advance(self, wall: float, cpu_share: float) -> None:
        self.wall += wall
        self.cpu += wall * cpu_share


def gauge(clocks: Clocks, workers: int = 8) -> CpuBoundGauge:
    return CpuBoundGauge(
        workers, window=0.5, cpu_clock=lambda: clocks.cpu, wall_clock=lambda: clocks.wall
    )


def test_a_busy_core_halves_the_limit_window_by_window_down_to_one() -> None:
    clocks = Clocks()
    pool = gauge(clocks)
    limits = []
    for _ in range(5):
        clocks.advance(0.5, cpu_share=1.0)
        limits.append(pool.look())
    assert limits == [4, 2, 1, 1, 1]
    assert pool.lowest == 1


def test_within_a_window_the_limit_stays() -> None:
    clocks = Clocks()
    pool = gauge(clocks)
    clocks.advance(0.25, cpu_share=1.0)
    assert pool.look() == 8
    clocks.advance(0.25, cpu_share=1.0)
    assert pool.look() == 4
    clocks.advance(0.125, cpu_share=0.0)
    assert pool.look() == 4 == pool.limit


def test_waiting_items_get_every_worker_back_at_once() -> None:
    clocks = Clocks()
    pool = gauge(clocks)
    for _ in range(3):
        clocks.advance(0.5, cpu_share=1.0)
        pool.look()
    assert pool.limit == 1
    clocks.advance(0.5, cpu_share=0.3)  # the item in flight waits (I/O, a gate)
    assert pool.look() == 8


def test_work_on_several_cores_is_not_held_back() -> None:
    # Code that releases the GIL (C extensions) keeps two cores busy: threads help.
    clocks = Clocks()
    pool = gauge(clocks)
    clocks.advance(0.5, cpu_share=1.9)
    assert pool.look() == 8
    assert pool.lowest == 8


def test_the_gauge_says_when_the_phase_turns_cpu_bound_and_back() -> None:
    clocks = Clocks()
    changes: list[bool] = []
    pool = CpuBoundGauge(
        4,
        window=0.5,
        cpu_clock=lambda: clocks.cpu,
        wall_clock=lambda: clocks.wall,
        on_change=changes.append,
    )
    for share in (1.0, 1.0, 0.1, 0.1, 1.0):
        clocks.advance(0.5, cpu_share=share)
        pool.look()
    assert changes == [True, False, True]


def test_the_switch_interval_is_lengthened_and_restored_exactly() -> None:
    found = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.003)
        interval = SwitchInterval(0.05)
        interval.follow(True)
        assert sys.getswitchinterval() == pytest.approx(0.05)
        interval.follow(False)
        assert sys.getswitchinterval() == pytest.approx(0.003)
        interval.follow(True)
        interval.restore()
        assert sys.getswitchinterval() == pytest.approx(0.003)
        interval.restore()  # twice: harmless
        assert sys.getswitchinterval() == pytest.approx(0.003)
    finally:
        sys.setswitchinterval(found)


def test_an_interval_someone_else_set_meanwhile_is_left_alone() -> None:
    found = sys.getswitchinterval()
    try:
        interval = SwitchInterval(0.05)
        interval.follow(True)
        sys.setswitchinterval(0.007)  # a test changed it
        interval.restore()
        assert sys.getswitchinterval() == pytest.approx(0.007)
    finally:
        sys.setswitchinterval(found)


def test_a_cpu_bound_phase_runs_with_a_longer_interval_then_restores_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every window counts as CPU-bound here: the interval is lengthened, then put back."""
    monkeypatch.setattr(cpu_bound, "SATURATED", (0.0, float("inf")))
    pytester.makepyfile(
        """
        import sys
        import time

        import pytest


        @pytest.mark.dynpool(4)
        @pytest.mark.parametrize("n", range(30))
        def test_sleep(n):
            # A gate, not a duration: wait (at most 2 s) until the gauge has looked at a
            # whole window and lengthened the interval; the run lasts several windows.
            for _ in range(200):
                if abs(sys.getswitchinterval() - 0.05) < 1e-6:
                    break
                time.sleep(0.01)
            with open("intervals.log", "a") as out:
                out.write(f"{sys.getswitchinterval()}\\n")
        """
    )
    found = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.004)
        result = pytester.runpytest_inprocess("--dynpool-workers", "4", "-p", "no:randomly")
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        sys.setswitchinterval(found)
    result.assert_outcomes(passed=30)
    seen = [float(line) for line in (pytester.path / "intervals.log").read_text().split()]
    assert max(seen) == pytest.approx(0.05)
    assert_no_worker_left()
