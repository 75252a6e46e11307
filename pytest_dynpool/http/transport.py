"""httpx transports that send a job's requests under the job's limits.

Every request of a job, from any test, thread or task, first waits out a
server's Retry-After, then takes one of the job's request slots (at most the
effective cap in flight), then a rate token if the job has a rate. The slot is
held until the response is closed, which httpx does once the body is read.

In adaptive mode 429 and 503 answers halve the effective cap, other answers
grow it again (see ``limits.AdaptiveCap``), and idempotent requests answered
429/503 are sent again, up to ``MAX_RETRIES`` times, so that the test sees the
final answer. Jobs that are not adaptive get the server's answers untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

from .traffic import OVERLOAD_STATUSES, JobState

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_RETRIES = 5
# Wait before a retry when the server gave no Retry-After: 0.05 s, doubling, at most 1 s.
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds; None when absent or an HTTP date we do not parse."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def backoff_seconds(attempt: int) -> float:
    """Wait before retry number ``attempt`` (1-based) when the server said nothing."""
    return float(min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1)))


def _should_retry(state: JobState, request: httpx.Request, status: int, attempt: int) -> bool:
    return (
        state.adaptive is not None
        and request.method in IDEMPOTENT_METHODS
        and status in OVERLOAD_STATUSES
        and attempt < MAX_RETRIES
    )


def _retry_wait(state: JobState, response: httpx.Response, attempt: int) -> float:
    retry_after = retry_after_seconds(response)
    if retry_after is None:
        return backoff_seconds(attempt)
    state.pause_for(retry_after)  # the whole job waits; seconds_paused() covers this request
    return 0.0


def _pool_timeout(request: httpx.Request) -> float | None:
    """The client's pool timeout also bounds the wait for one of the job's request slots."""
    timeouts = request.extensions.get("timeout", {})
    value = timeouts.get("pool") if isinstance(timeouts, dict) else None
    return float(value) if value is not None else None


def _slot_timeout(state: JobState, request: httpx.Request) -> httpx.PoolTimeout:
    # E.g. a second request inside a client.stream() block of a job with cap 1.
    return httpx.PoolTimeout(
        f"waited the pool timeout for one of dynpool job {state.name!r}'s "
        f"{state.effective_cap} request slots; all stayed in use (a response left open?)",
        request=request,
    )


class _Release:
    """Gives a request slot back once, however often it is called."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def __call__(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class _ReleasingStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, release: _Release) -> None:
        self._inner = inner
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._release()


class _AsyncReleasingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, release: _Release) -> None:
        self._inner = inner
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._release()


class LimitedTransport(httpx.BaseTransport):
    """A job's limits around a plain ``httpx.HTTPTransport`` (threads)."""

    def __init__(
        self,
        state: JobState,
        inner: httpx.BaseTransport,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.state = state
        self.inner = inner
        self._sleep = sleep
        self._clock = clock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        state = self.state
        if state.adaptive is not None and request.method in IDEMPOTENT_METHODS:
            request.read()  # a body we may have to send again
        attempt = 0
        while True:
            while (paused := state.seconds_paused()) > 0:
                self._sleep(paused)
            if not state.requests.acquire(_pool_timeout(request)):
                raise _slot_timeout(state, request)
            release = _Release(state.requests.release)
            try:
                delay = state.next_request_delay()
                if delay > 0:
                    self._sleep(delay)
                generation = state.generation
                started = self._clock()
                response = self.inner.handle_request(request)
            except BaseException:
                release()
                state.record_error()
                raise
            state.record(response.status_code, self._clock() - started, generation)
            if not _should_retry(state, request, response.status_code, attempt):
                if response.is_closed or isinstance(response.stream, httpx.ByteStream):
                    release()  # a body already in memory (mock transports): nothing in flight
                else:
                    assert isinstance(response.stream, httpx.SyncByteStream)
                    response.stream = _ReleasingStream(response.stream, release)
                return response
            attempt += 1
            state.record_retry()
            try:
                response.close()
            finally:
                release()
            wait = _retry_wait(state, response, attempt)
            if wait > 0:
                self._sleep(wait)

    def close(self) -> None:
        self.inner.close()


class AsyncLimitedTransport(httpx.AsyncBaseTransport):
    """A job's limits around a plain ``httpx.AsyncHTTPTransport`` (asyncio tasks)."""

    def __init__(
        self,
        state: JobState,
        inner: httpx.AsyncBaseTransport,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.state = state
        self.inner = inner
        self._clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        state = self.state
        if state.adaptive is not None and request.method in IDEMPOTENT_METHODS:
            await request.aread()
        attempt = 0
        while True:
            while (paused := state.seconds_paused()) > 0:
                await asyncio.sleep(paused)
            if not await state.requests.acquire_async(_pool_timeout(request)):
                raise _slot_timeout(state, request)
            release = _Release(state.requests.release)
            try:
                delay = state.next_request_delay()
                if delay > 0:
                    await asyncio.sleep(delay)
                generation = state.generation
                started = self._clock()
                response = await self.inner.handle_async_request(request)
            except BaseException:
                release()
                state.record_error()
                raise
            state.record(response.status_code, self._clock() - started, generation)
            if not _should_retry(state, request, response.status_code, attempt):
                if response.is_closed or isinstance(response.stream, httpx.ByteStream):
                    release()
                else:
                    assert isinstance(response.stream, httpx.AsyncByteStream)
                    response.stream = _AsyncReleasingStream(response.stream, release)
                return response
            attempt += 1
            state.record_retry()
            try:
                await response.aclose()
            finally:
                release()
            wait = _retry_wait(state, response, attempt)
            if wait > 0:
                await asyncio.sleep(wait)

    async def aclose(self) -> None:
        await self.inner.aclose()


def make_client(state: JobState, base_url: str) -> httpx.Client:
    """The job's shared client: one connection pool for all its tests and threads."""
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=state.cap))
    return httpx.Client(
        base_url=base_url, transport=LimitedTransport(state, inner), timeout=DEFAULT_TIMEOUT
    )


def make_async_client(state: JobState, base_url: str) -> httpx.AsyncClient:
    """A client for one async test (its connections belong to that test's event loop)."""
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=state.cap))
    return httpx.AsyncClient(
        base_url=base_url, transport=AsyncLimitedTransport(state, inner), timeout=DEFAULT_TIMEOUT
    )
