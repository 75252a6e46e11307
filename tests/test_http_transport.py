"""The limited transports on their own: httpx.MockTransport answers, a fake clock sleeps."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from collections.abc import Callable

import certifi
import httpx
import pytest

from pytest_dynpool.http.exchange import MAX_RETRIES, backoff_seconds
from pytest_dynpool.http.summary import format_http_summary
from pytest_dynpool.http.traffic import MAX_RETRY_AFTER_SECONDS, JobState
from pytest_dynpool.http.transport import AsyncLimitedTransport, LimitedTransport
from pytest_dynpool.jobs import Job
from pytest_dynpool.limits import parse_rate


class FakeTime:
    """A clock whose sleep just moves it on, recording every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make(
    answers: list[httpx.Response],
    *,
    adaptive: bool = False,
    rate: str | None = None,
    cap: int = 4,
) -> tuple[httpx.Client, JobState, FakeTime, list[httpx.Request]]:
    time = FakeTime()
    job = Job("api", cap, cap, "test", rate=parse_rate(rate) if rate else None, adaptive=adaptive)
    state = JobState(job, clock=time)
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        model = answers.pop(0) if len(answers) > 1 else answers[0]
        return httpx.Response(model.status_code, headers=model.headers, content=model.content)

    transport = LimitedTransport(state, httpx.MockTransport(answer), sleep=time.sleep, clock=time)
    return httpx.Client(transport=transport, base_url="http://api"), state, time, sent


def test_plain_jobs_get_the_servers_answer_untouched() -> None:
    client, state, time, sent = make([httpx.Response(429, headers={"Retry-After": "3"})])
    with client:
        assert client.get("/x").status_code == 429
    assert len(sent) == 1
    assert time.sleeps == []
    assert (state.stats.requests, state.stats.overloaded, state.stats.retries) == (1, 1, 0)
    assert state.effective_cap == 4


def test_adaptive_retries_waits_out_retry_after_and_halves_the_cap() -> None:
    client, state, time, sent = make(
        [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, text="ok")],
        adaptive=True,
    )
    with client:
        response = client.get("/x")
    assert (response.status_code, response.text) == (200, "ok")
    assert len(sent) == 2
    assert time.sleeps == [2.0]
    assert (state.stats.requests, state.stats.overloaded, state.stats.retries) == (2, 1, 1)
    assert state.stats.status_classes == {"4xx": 1, "2xx": 1}
    assert (state.effective_cap, state.min_effective_cap) == (2, 2)
    assert state.requests.capacity == 2
    assert state.requests.in_use == 0  # every slot given back


def test_retry_after_is_capped_and_backoff_used_without_it() -> None:
    client, _, time, _ = make(
        [
            httpx.Response(503, headers={"Retry-After": "3600"}),
            httpx.Response(503),
            httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
            httpx.Response(204),
        ],
        adaptive=True,
    )
    with client:
        assert client.delete("/x").status_code == 204
    assert time.sleeps == [MAX_RETRY_AFTER_SECONDS, backoff_seconds(2), backoff_seconds(3)]
    assert [backoff_seconds(n) for n in range(1, 7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]


def test_retries_stop_at_the_limit_and_the_test_sees_the_last_answer() -> None:
    client, state, _, sent = make([httpx.Response(503)], adaptive=True)
    with client:
        assert client.get("/x").status_code == 503
    assert len(sent) == 1 + MAX_RETRIES
    assert state.stats.retries == MAX_RETRIES
    assert state.effective_cap == 1  # 4 -> 2 -> 1, then stays at the minimum
    assert state.requests.in_use == 0


def test_non_idempotent_requests_are_not_retried() -> None:
    client, state, _, sent = make([httpx.Response(429), httpx.Response(200)], adaptive=True)
    with client:
        assert client.post("/x", json={"a": 1}).status_code == 429
    assert len(sent) == 1
    assert state.effective_cap == 2  # the 429 still counts for the cap


def test_a_retried_put_sends_its_body_again() -> None:
    client, _, _, sent = make([httpx.Response(429), httpx.Response(200)], adaptive=True)
    with client:
        assert client.put("/x", content=b"payload").status_code == 200
    assert [request.content for request in sent] == [b"payload", b"payload"]


def test_successes_grow_the_cap_back_one_at_a_time() -> None:
    answers = [httpx.Response(429)] + [httpx.Response(200)] * 20
    client, state, _, _ = make(answers, adaptive=True, cap=4)
    with client:
        statuses = [client.get("/x").status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert (state.effective_cap, state.min_effective_cap) == (4, 2)


def test_requests_wait_for_rate_tokens() -> None:
    client, state, time, _ = make([httpx.Response(200)], rate="10/s", cap=2)
    with client:
        for _ in range(5):
            client.get("/x")
    # Burst of 2 (the cap), then one every 0.1 s on the fake clock.
    assert time.sleeps == pytest.approx([0.1, 0.1, 0.1])
    assert state.stats.requests == 5


def test_a_transport_error_is_counted_and_frees_the_slot() -> None:
    time = FakeTime()
    state = JobState(Job("api", 1, 1, "test"), clock=time)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    transport = LimitedTransport(state, httpx.MockTransport(refuse), sleep=time.sleep, clock=time)
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError):
        client.get("http://api/x")
    assert (state.stats.requests, state.stats.errors, state.requests.in_use) == (1, 1, 0)


def test_a_streamed_response_holds_its_slot_until_closed() -> None:
    time = FakeTime()
    state = JobState(Job("api", 1, 1, "test"), clock=time)

    def stream_body(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"bo", b"dy"]))  # not in memory yet

    transport = LimitedTransport(state, httpx.MockTransport(stream_body), clock=time)
    with httpx.Client(transport=transport) as client:
        with client.stream("GET", "http://api/x") as response:
            assert state.requests.in_use == 1
            assert response.read() == b"body"
        assert state.requests.in_use == 0
        assert client.get("http://api/x").content == b"body"  # read and closed by httpx
        assert state.requests.in_use == 0


def test_async_transport_retries_and_limits_too() -> None:
    time = FakeTime()
    state = JobState(Job("api", 2, 2, "test", adaptive=True), clock=time)
    answers = [httpx.Response(503, headers={"Retry-After": "0"}), httpx.Response(200)]

    def answer(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def main() -> list[int]:
        transport = AsyncLimitedTransport(state, httpx.MockTransport(answer), clock=time)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            responses = await asyncio.gather(*(client.get("/x") for _ in range(3)))
        return [response.status_code for response in responses]

    assert asyncio.run(main()) == [200, 200, 200]
    assert (state.stats.requests, state.stats.retries, state.requests.in_use) == (4, 1, 0)
    assert state.requests.peak <= 2


def test_http_summary_rows() -> None:
    job_state: Callable[[str, bool], JobState] = lambda name, adaptive: JobState(  # noqa: E731
        Job(name, 8, 8, "test", rate=parse_rate("20/s"), adaptive=adaptive)
    )
    idle = job_state("idle", False)
    busy = job_state("busy", True)
    assert format_http_summary([idle]) == []
    for status, latency in [(200, 0.010), (200, 0.020), (429, 0.001), (404, 0.030)]:
        busy.record(status, latency, busy.generation)
    busy.record_retry()
    lines = format_http_summary([idle, busy])
    assert len(lines) == 2  # the idle job has no row
    header = "job requests 2xx 3xx 4xx 5xx 429/503 retries errors p50 ms p95 ms rate cap"
    assert lines[0].split() == header.split()
    row = "busy  4  2  0  2  0  1  1  0  10  30  20/s  4 (min 4, max 8)"
    assert re.split(r"\s{2,}", lines[1]) == row.split("  ")


def test_a_request_that_never_gets_a_slot_times_out_instead_of_hanging() -> None:
    time = FakeTime()
    state = JobState(Job("api", 1, 1, "test"), clock=time)

    def stream_body(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"body"]))

    transport = LimitedTransport(state, httpx.MockTransport(stream_body), clock=time)
    timeout = httpx.Timeout(30.0, pool=0.01)
    with httpx.Client(transport=transport, timeout=timeout) as client:
        with client.stream("GET", "http://api/held"):
            with pytest.raises(httpx.PoolTimeout, match="dynpool job 'api'"):
                client.get("http://api/second")  # cap 1: the stream holds the only slot
            assert state.requests.waiting == 0
        assert client.get("http://api/after").status_code == 200


def test_async_slot_wait_times_out_too() -> None:
    state = JobState(Job("api", 1, 1, "test"))

    async def main() -> tuple[bool, bool]:
        state.requests.acquire()
        timed_out = await state.requests.acquire_async(timeout=0.01)
        state.requests.release()
        got_it = await state.requests.acquire_async(timeout=0.01)
        state.requests.release()
        return timed_out, got_it

    assert asyncio.run(main()) == (False, True)
    assert (state.requests.in_use, state.requests.waiting) == (0, 0)


def test_clients_share_one_tls_context_per_ca_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx would load the CA bundle for every client (one per async test); the plugin
    # loads it once, and again only when $SSL_CERT_FILE / $SSL_CERT_DIR change.
    from pytest_dynpool.http import transport

    made: list[str | None] = []

    def counting(*, verify: bool, trust_env: bool) -> ssl.SSLContext:
        made.append(os.environ.get("SSL_CERT_FILE"))
        return real(verify=verify, trust_env=trust_env)

    real = httpx.create_ssl_context
    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    transport._ssl_context_for.cache_clear()
    traffic = JobState(Job("api", 2, 2, "test"))
    try:
        with transport.make_client(traffic, "http://x"), transport.make_client(traffic, "http://x"):
            pass
        for _ in range(2):
            asyncio.run(transport.make_async_client(traffic, "http://x").aclose())
        first = transport.default_ssl_context()
        assert made == [None]
        monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
        second = transport.default_ssl_context()
        assert made == [None, certifi.where()]
        assert second is not first
        assert second.verify_mode is ssl.CERT_REQUIRED
        assert second.check_hostname
    finally:
        transport._ssl_context_for.cache_clear()
