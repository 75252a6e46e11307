"""Rate parsing, the token bucket on a fake clock, the resizable limiter and the AIMD cap."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from pytest_dynpool.limits import (
    SUCCESS_RUN,
    AdaptiveCap,
    ConcurrencyLimiter,
    Rate,
    TokenBucket,
    _Waiter,
    parse_rate,
)
from pytest_dynpool.scheduler import CappedScheduler


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("10/s", 10.0), ("600/m", 10.0), ("0.5/s", 0.5), (" 3 / m ", 0.05)],
)
def test_rates_parse(text: str, per_second: float) -> None:
    assert parse_rate(text).per_second == pytest.approx(per_second)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (10, TypeError),
        (None, TypeError),
        ("10", ValueError),
        ("10/h", ValueError),
        ("-1/s", ValueError),
        ("0/s", ValueError),
        ("ten/s", ValueError),
        ("", ValueError),
    ],
)
def test_bad_rates_are_rejected(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="rate must"):
        parse_rate(value)


def test_bucket_starts_full_then_gives_one_token_per_interval() -> None:
    clock = FakeClock()
    bucket = TokenBucket(per_second=10.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.1)
    clock.advance(0.05)
    assert bucket.take() == pytest.approx(0.05)  # a refused take costs nothing
    clock.advance(0.05)
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.1)


def test_bucket_saves_up_at_most_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(per_second=2.0, burst=2, clock=clock)
    assert bucket.take() == 0.0
    assert bucket.take() == 0.0
    clock.advance(60.0)  # a long idle time refills to the burst, not to 120
    assert [bucket.take() for _ in range(2)] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)


def test_reservations_queue_up_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(per_second=20.0, burst=2, clock=clock)
    delays = [bucket.reserve() for _ in range(6)]
    assert delays == pytest.approx([0.0, 0.0, 0.05, 0.10, 0.15, 0.20])
    clock.advance(0.20)  # every reserved token has matured; the debt is paid
    assert bucket.reserve() == pytest.approx(0.05)


def test_sixty_requests_at_twenty_a_second_take_about_three_seconds() -> None:
    # The benchmark's figure, on the fake clock: burst 2, then one every 50 ms.
    bucket = TokenBucket(per_second=20.0, burst=2, clock=FakeClock())
    assert max(bucket.reserve() for _ in range(60)) == pytest.approx(58 / 20)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="per_second > 0"):
        TokenBucket(per_second=0.0, burst=1)
    with pytest.raises(ValueError, match="burst >= 1"):
        TokenBucket(per_second=1.0, burst=0)


def test_rate_text_is_kept_for_the_summary() -> None:
    assert parse_rate("600/m") == Rate(600.0, 60.0, "600/m")
    assert str(parse_rate(" 600 / m")) == "600/m"


class Holders:
    """``count`` threads that take a slot, note the peak and hold it until ``release``."""

    def __init__(self, limiter: ConcurrencyLimiter, count: int) -> None:
        self.limiter = limiter
        self.lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.threads = [threading.Thread(target=self._hold) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def _hold(self) -> None:
        self.limiter.acquire()
        with self.lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        self.entered.release()
        self.release.wait(30)
        with self.lock:
            self.inside -= 1
        self.limiter.release()


def test_limiter_holds_threads_at_capacity_and_grows_on_resize() -> None:
    limiter = ConcurrencyLimiter(2)
    holders = Holders(limiter, 5)
    for _ in range(2):
        assert holders.entered.acquire(timeout=30)
    # Three wait: no third one gets in while the two hold their slots.
    assert not holders.entered.acquire(timeout=0.05)
    assert (limiter.in_use, limiter.waiting) == (2, 3)
    limiter.resize(4)
    for _ in range(2):
        assert holders.entered.acquire(timeout=30)
    assert (limiter.in_use, limiter.waiting) == (4, 1)
    holders.release.set()
    for thread in holders.threads:
        thread.join(30)
    assert holders.peak == 4
    assert limiter.in_use == 0
    assert limiter.peak == 4


def test_shrinking_takes_no_slot_away_but_holds_newcomers_back() -> None:
    limiter = ConcurrencyLimiter(3)
    for _ in range(3):
        limiter.acquire()
    limiter.resize(1)
    limiter.release()
    limiter.release()
    assert limiter.in_use == 1
    got_in = threading.Event()

    def newcomer() -> None:
        limiter.acquire()
        got_in.set()

    thread = threading.Thread(target=newcomer)
    thread.start()
    assert not got_in.wait(0.05)  # 1 in use, capacity 1
    limiter.release()
    assert got_in.wait(30)
    thread.join(30)
    limiter.release()
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        limiter.release()


def test_limiter_serves_asyncio_tasks_without_blocking_the_loop() -> None:
    limiter = ConcurrencyLimiter(2)

    async def main() -> tuple[int, int]:
        in_use = 0
        peak = 0
        both_in = asyncio.Event()

        async def request() -> None:
            nonlocal in_use, peak
            await limiter.acquire_async()
            in_use += 1
            peak = max(peak, in_use)
            if in_use == 2:
                both_in.set()
            await both_in.wait()  # the first two hold until both are in
            await asyncio.sleep(0)
            in_use -= 1
            limiter.release()

        await asyncio.gather(*(request() for _ in range(5)))
        return peak, limiter.in_use

    assert asyncio.run(main()) == (2, 0)


def test_a_cancelled_async_waiter_gives_up_its_place() -> None:
    limiter = ConcurrencyLimiter(1)

    async def main() -> int:
        limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire_async())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        limiter.release()
        return limiter.in_use

    assert asyncio.run(main()) == 0
    limiter.acquire()  # the slot is free again, not held by the cancelled task
    assert limiter.in_use == 1


def test_adaptive_cap_halves_once_per_overload_episode_down_to_one() -> None:
    cap = AdaptiveCap(maximum=8)
    assert (cap.cap, cap.minimum_seen) == (8, 8)
    generation = cap.generation
    assert cap.on_overload(generation) is True
    assert cap.cap == 4
    # Answers to requests sent before the decrease do not halve again.
    assert cap.on_overload(generation) is False
    assert cap.cap == 4
    assert cap.on_overload(cap.generation) is True
    assert cap.on_overload(cap.generation) is True
    assert cap.cap == 1
    assert cap.on_overload(cap.generation) is False
    assert (cap.cap, cap.minimum_seen, cap.decreases) == (1, 1, 3)


def test_adaptive_cap_grows_by_one_per_run_of_successes_up_to_the_maximum() -> None:
    cap = AdaptiveCap(maximum=3)
    cap.on_overload(cap.generation)
    assert cap.cap == 1
    grew = [cap.on_success() for _ in range(SUCCESS_RUN)]
    assert grew == [False] * (SUCCESS_RUN - 1) + [True]
    assert cap.cap == 2
    cap.on_overload(cap.generation)  # an overload restarts the run
    assert cap.cap == 1
    for _ in range(3 * SUCCESS_RUN):
        cap.on_success()
    assert cap.cap == 3  # never above the maximum
    assert cap.minimum_seen == 1


def test_scheduler_starts_a_rate_limited_job_at_its_rate() -> None:
    clock = FakeClock()
    # job 0: 4 items, cap 2, 10 starts/s; job 1: 2 items, no rate.
    scheduler = CappedScheduler(
        workers=8, caps=[2, 2], job_of_item=[0, 0, 0, 0, 1, 1], rates=[10.0, None], clock=clock
    )
    first = {scheduler.next_dispatch() for _ in range(4)}
    assert first == {0, 1, 4, 5}  # the burst (= cap) starts at once
    assert scheduler.next_dispatch() is None
    scheduler.complete(0)
    scheduler.complete(1)
    # Slots are free, but the job has no start token until 0.1 s later.
    assert scheduler.next_dispatch() is None
    assert scheduler.seconds_until_ready() == pytest.approx(0.1)
    clock.advance(0.1)
    assert scheduler.next_dispatch() == 2
    assert scheduler.next_dispatch() is None
    assert scheduler.seconds_until_ready() == pytest.approx(0.1)
    clock.advance(0.1)
    assert scheduler.next_dispatch() == 3
    assert scheduler.seconds_until_ready() is None


def test_scheduler_follows_an_effective_cap_down_and_up() -> None:
    scheduler = CappedScheduler(workers=8, caps=[4], job_of_item=[0] * 8)
    assert [scheduler.next_dispatch() for _ in range(4)] == [0, 1, 2, 3]
    scheduler.set_cap(0, 1)
    for item in (0, 1, 2):
        scheduler.complete(item)
        assert scheduler.next_dispatch() is None  # 1 or more still in flight, cap 1
    scheduler.complete(3)
    assert scheduler.next_dispatch() == 4
    assert scheduler.next_dispatch() is None
    scheduler.set_cap(0, 3)
    assert [scheduler.next_dispatch() for _ in range(3)] == [5, 6, None]
    with pytest.raises(ValueError, match="cap must be >= 1"):
        scheduler.set_cap(0, 0)


def test_a_waiter_that_cannot_be_woken_does_not_keep_the_slot() -> None:
    # An async waiter whose event loop was closed (a crashed test) cannot be told.
    limiter = ConcurrencyLimiter(1)
    limiter.acquire()
    limiter._waiters.append(_Waiter(wake=lambda: False))
    limiter.release()
    assert (limiter.in_use, limiter.waiting) == (0, 0)


def test_waking_an_async_waiter_of_a_closed_loop_reports_failure() -> None:
    limiter = ConcurrencyLimiter(1)
    limiter.acquire()

    async def enqueue() -> None:
        task = asyncio.ensure_future(limiter.acquire_async())
        await asyncio.sleep(0)
        assert limiter.waiting == 1
        task.cancel()  # leave the loop cleanly; the waiter's wake is kept below
        wake = limiter._waiters[0].wake
        with pytest.raises(asyncio.CancelledError):
            await task
        wakes.append(wake)

    wakes: list[Callable[[], bool]] = []
    asyncio.run(enqueue())  # asyncio.run closes the loop
    assert wakes[0]() is False
