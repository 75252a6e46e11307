"""Request limits in a shared store: two JobStates on one SQLite file stand for two processes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_dynpool.backends import open_backend, request_slots
from pytest_dynpool.backends.gate import StoreGate
from pytest_dynpool.http.shared_limits import SharedRequestLimits
from pytest_dynpool.http.traffic import JobState
from pytest_dynpool.jobs import Job
from pytest_dynpool.limits import parse_rate

WAIT = 30.0


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[tuple[StoreGate, StoreGate]]:
    url = f"sqlite://{tmp_path / 'limits.db'}"
    one, two = StoreGate(open_backend(url, "ns")), StoreGate(open_backend(url, "ns"))
    yield one, two
    one.close()
    two.close()


def states(gates: tuple[StoreGate, StoreGate], job: Job) -> tuple[JobState, JobState]:
    return (
        JobState(job, shared=SharedRequestLimits(gates[0], job)),
        JobState(job, shared=SharedRequestLimits(gates[1], job)),
    )


def test_request_slots_are_shared_and_counted_apart_from_test_slots(
    gates: tuple[StoreGate, StoreGate],
) -> None:
    here, there = states(gates, Job("api", 1, 1, "here"))
    assert gates[0].try_acquire("api", 1) is None  # a test slot: requests do not wait on it
    release_here = here.take_shared_slot()
    entered = threading.Event()

    def request_there() -> None:
        release_there = there.take_shared_slot()
        entered.set()
        release_there()

    thread = threading.Thread(target=request_there)
    thread.start()
    assert not entered.is_set()  # the other "process" waits for the one request slot
    assert gates[1].backend.in_flight(request_slots("api")) == 1
    release_here()
    thread.join(WAIT)
    assert entered.is_set()
    assert gates[1].backend.peak(request_slots("api")) == 1


def test_a_retry_after_pauses_every_process(gates: tuple[StoreGate, StoreGate]) -> None:
    here, there = states(gates, Job("api", 2, 2, "here"))
    assert there.seconds_paused() == 0.0
    here.pause_for(5.0)
    assert 0.0 < there.seconds_paused() <= 5.0


def test_an_adaptive_cap_is_published_and_followed(gates: tuple[StoreGate, StoreGate]) -> None:
    job = Job("api", 8, 8, "here", adaptive=True)
    here, there = states(gates, job)
    here.record(429, 0.01, here.generation)  # halves 8 -> 4 and publishes it
    assert gates[1].read_state("api").effective_cap == 4
    releases = [there.take_shared_slot() for _ in range(4)]
    assert gates[1].backend.in_flight(request_slots("api")) == 4
    blocked = threading.Event()

    def fifth() -> None:
        there.take_shared_slot()()
        blocked.set()

    thread = threading.Thread(target=fifth)
    thread.start()
    assert not blocked.is_set()  # "there" holds its own cap 8, but follows the published 4
    releases[0]()
    thread.join(WAIT)
    assert blocked.is_set()
    for release in releases[1:]:
        release()


def test_rate_tokens_are_shared(gates: tuple[StoreGate, StoreGate]) -> None:
    job = Job("api", 1, 1, "here", rate=parse_rate("1/m"), declared_rate=parse_rate("1/m"))
    here, there = states(gates, job)
    assert here.shared_token_wait() == 0.0
    assert 0.0 < there.shared_token_wait() <= 60.0  # the burst (cap 1) went to "here"


def test_an_async_request_holds_the_shared_slot_until_its_answer(
    gates: tuple[StoreGate, StoreGate],
) -> None:
    import asyncio

    import httpx

    from pytest_dynpool.http.transport import AsyncLimitedTransport

    here, _ = states(gates, Job("api", 1, 1, "here"))
    seen: list[int] = []

    async def main() -> None:
        answer = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            # While this request is at the server, the store holds its slot for everyone.
            seen.append(gates[1].backend.in_flight(request_slots("api")))
            await answer.wait()
            return httpx.Response(200, text="ok")

        transport = AsyncLimitedTransport(here, httpx.MockTransport(handler))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            request = asyncio.ensure_future(client.get("/"))
            for _ in range(3000):  # the loop stays free while the store is asked; 30 s bound
                if seen or request.done():
                    break
                await asyncio.sleep(0.01)
            answer.set()
            assert (await request).text == "ok"

    asyncio.run(main())
    assert seen == [1]
    assert gates[1].backend.in_flight(request_slots("api")) == 0


def test_a_cancelled_async_request_gives_back_the_shared_slot_its_wait_takes(
    gates: tuple[StoreGate, StoreGate],
) -> None:
    """The slot wait runs on a thread; cancelling the task must not leak what it takes."""
    import asyncio

    import httpx

    from pytest_dynpool.http.transport import AsyncLimitedTransport

    here, there = states(gates, Job("api", 1, 1, "here"))
    held_there = there.take_shared_slot()  # the other "process" holds the only slot
    waiting = threading.Event()
    take = here.take_shared_slot

    def take_and_tell() -> Callable[[], None]:
        waiting.set()
        return take()

    here.take_shared_slot = take_and_tell  # type: ignore[method-assign]

    async def main() -> None:
        async def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, text="ok")  # pragma: no cover - never reached

        transport = AsyncLimitedTransport(here, httpx.MockTransport(handler))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            request = asyncio.ensure_future(client.get("/"))
            for _ in range(3000):  # 30 s bound
                if waiting.is_set():
                    break
                await asyncio.sleep(0.01)
            assert waiting.is_set()
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request
            held_there()  # the waiting thread may now take the slot: it must give it back

    asyncio.run(main())  # returns once the loop's threads have ended
    assert gates[1].backend.in_flight(request_slots("api")) == 0
