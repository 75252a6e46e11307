"""The one core behind both transports: threads and asyncio see the same decisions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx
import pytest

from pytest_dynpool.http.exchange import retry_after_seconds
from pytest_dynpool.http.traffic import CURRENT_HOLDER, HeldSlots, JobTraffic
from pytest_dynpool.http.transport import AsyncLimitedTransport, LimitedTransport
from pytest_dynpool.model import Job, parse_rate

from . import test_http_transport as transport_tests


class FakeTime(transport_tests.FakeTime):
    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def _script() -> list[httpx.Response]:
    return [
        httpx.Response(429),  # no Retry-After: back off 0.05 s
        httpx.Response(503, headers={"Retry-After": "2"}),  # the whole job pauses 2 s
        httpx.Response(429),  # back off 0.2 s (third retry)
        httpx.Response(200, content=b"done"),
    ]


def _job() -> Job:
    return Job("api", 2, 2, "test", rate=parse_rate("1/s"), adaptive=True)


def _answers() -> httpx.MockTransport:
    script = _script()
    return httpx.MockTransport(lambda request: script.pop(0))


def _always_ok() -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200))


def _figures(traffic: JobTraffic, time: FakeTime) -> tuple[object, ...]:
    stats = traffic.stats
    return (
        time.sleeps,
        stats.requests,
        stats.retries,
        stats.overloaded,
        dict(stats.status_classes),
        traffic.effective_cap,
        traffic.requests.in_use,
    )


def test_sync_and_async_transports_make_the_same_decisions() -> None:
    sync_time = FakeTime()
    sync_traffic = JobTraffic(_job(), clock=sync_time)
    transport = LimitedTransport(sync_traffic, _answers(), sleep=sync_time.sleep, clock=sync_time)
    with httpx.Client(transport=transport) as client:
        assert client.get("http://api/x").content == b"done"

    async_time = FakeTime()
    async_traffic = JobTraffic(_job(), clock=async_time)

    async def main() -> bytes:
        transport = AsyncLimitedTransport(
            async_traffic, _answers(), clock=async_time, sleep=async_time.async_sleep
        )
        async with httpx.AsyncClient(transport=transport) as client:
            return (await client.get("http://api/x")).content

    assert asyncio.run(main()) == b"done"
    assert _figures(sync_traffic, sync_time) == _figures(async_traffic, async_time)
    # And they are the decisions the README promises: back off 0.05 s, wait out the
    # Retry-After of 2 s, back off 0.2 s; the rate (burst 2, 1/s) refills meanwhile.
    assert sync_time.sleeps == pytest.approx([0.05, 2.0, 0.2])
    assert _figures(sync_traffic, sync_time)[1:] == (4, 3, 3, {"4xx": 2, "5xx": 1, "2xx": 1}, 1, 0)


def _cancel_a_request(traffic: JobTraffic, waiting: Callable[[], bool]) -> None:
    """Send one request from a task, cancel it once ``waiting()`` says where it waits."""

    async def main() -> None:
        transport = AsyncLimitedTransport(traffic, _always_ok())
        async with httpx.AsyncClient(transport=transport) as client:
            task = asyncio.ensure_future(client.get("http://api/x"))
            while not waiting():
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_a_task_cancelled_while_it_waits_for_its_rate_token_frees_its_slot() -> None:
    traffic = JobTraffic(Job("api", 1, 1, "test", rate=parse_rate("1/m")))
    traffic.next_request_delay()  # the bucket's one token is gone: the next waits 60 s
    _cancel_a_request(traffic, lambda: traffic.requests.in_use == 1)
    assert (traffic.requests.in_use, traffic.stats.errors) == (0, 1)


def test_a_task_cancelled_while_it_waits_for_a_slot_leaves_no_waiter() -> None:
    traffic = JobTraffic(Job("api", 1, 1, "test"))
    traffic.requests.acquire()  # someone else holds the only slot
    _cancel_a_request(traffic, lambda: traffic.requests.waiting == 1)
    traffic.requests.release()
    assert (traffic.requests.in_use, traffic.requests.waiting, traffic.stats.requests) == (0, 0, 0)


def test_an_error_while_closing_a_retried_response_still_frees_the_slot() -> None:
    time = FakeTime()
    traffic = JobTraffic(Job("api", 1, 1, "test", adaptive=True), clock=time)

    class BrokenBody(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield b""

        def close(self) -> None:
            raise OSError("connection reset while closing")

    inner = httpx.MockTransport(lambda request: httpx.Response(503, stream=BrokenBody()))
    transport = LimitedTransport(traffic, inner, sleep=time.sleep, clock=time)
    with httpx.Client(transport=transport) as client, pytest.raises(OSError, match="reset"):
        client.get("http://api/x")
    assert traffic.requests.in_use == 0


# Issue 11, item 12: a Retry-After given as an HTTP date.
NOW = "Tue, 01 Dec 2026 00:30:00 GMT"
IN_3_SECONDS = "Tue, 01 Dec 2026 00:30:03 GMT"


def test_a_retry_after_date_is_waited_out_by_the_servers_clock() -> None:
    time = FakeTime()
    traffic = JobTraffic(Job("api", 2, 2, "test", adaptive=True), clock=time)
    script = [
        httpx.Response(503, headers={"Date": NOW, "Retry-After": IN_3_SECONDS}),
        httpx.Response(200),
    ]
    inner = httpx.MockTransport(lambda request: script.pop(0))
    transport = LimitedTransport(traffic, inner, sleep=time.sleep, clock=time)
    with httpx.Client(transport=transport) as client:
        assert client.get("http://api/x").status_code == 200
    assert time.sleeps == [3.0]  # not the 0.05 s backoff for a server that said nothing


def test_a_retry_after_date_without_a_date_header_is_counted_from_our_clock() -> None:
    now = parsedate_to_datetime(NOW).timestamp()
    response = httpx.Response(503, headers={"Retry-After": IN_3_SECONDS})
    assert retry_after_seconds(response, wall_clock=lambda: now) == 3.0
    assert retry_after_seconds(response, wall_clock=lambda: now + 1.5) == 1.5


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Retry-After": "soon"},
        {"Retry-After": "Tue, 99 Foo 2026 00:30:03 GMT"},
        # A date already past (stale, or clocks that disagree): the usual backoff.
        {"Date": IN_3_SECONDS, "Retry-After": NOW},
    ],
)
def test_a_retry_after_that_gives_no_wait_is_no_hint(headers: dict[str, str]) -> None:
    assert retry_after_seconds(httpx.Response(503, headers=headers)) is None


def test_a_retry_after_in_seconds_is_read_as_before() -> None:
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "2.5"})) == 2.5
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "0"})) == 0.0


def test_a_slot_given_back_at_the_end_of_a_test_is_not_given_back_twice() -> None:
    traffic = JobTraffic(Job("api", 1, 1, "test"))

    def stream_body(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"body"]))  # held until closed

    holder = HeldSlots()
    token = CURRENT_HOLDER.set(holder)
    try:
        with httpx.Client(
            transport=LimitedTransport(traffic, httpx.MockTransport(stream_body))
        ) as client:
            response = client.send(client.build_request("GET", "http://api/x"), stream=True)
            assert traffic.requests.in_use == 1
            assert holder.give_back() == ["api"]  # the test ended with it open
            assert traffic.requests.in_use == 0
            response.close()  # closed late: the slot is not released a second time
            assert traffic.requests.in_use == 0
            client.get("http://api/x")  # and a request after the end holds nothing
            assert (traffic.requests.in_use, holder.give_back()) == (0, [])
    finally:
        CURRENT_HOLDER.reset(token)
