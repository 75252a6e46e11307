"""httpx transports that send a job's requests under the job's limits.

Every request of a job, from any test, thread or task, first waits out a
server's Retry-After, then takes one of the job's request slots (at most the
effective cap in flight), then a rate token if the job has a rate. The slot is
held until the response is closed, which httpx does once the body is read.

In adaptive mode 429 and 503 answers halve the effective cap, other answers
grow it again (see ``limits.AdaptiveCap``), and idempotent requests answered
429/503 are sent again, up to ``MAX_RETRIES`` times, so that the test sees the
final answer. Jobs that are not adaptive get the server's answers untouched.

Threads and asyncio share one core, ``exchange.exchange``: a generator that
makes every decision and keeps every count, and yields the few steps that block
(wait, take a slot, read the body, send, close). ``LimitedTransport`` performs
those steps with blocking calls, ``AsyncLimitedTransport`` awaits them; neither
decides.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx

from .. import clock
from .exchange import Close, Driver, Release, Send, Step, TakeSharedSlot, TakeSlot, Wait, exchange
from .traffic import JobTraffic

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class _SyncReleasingStream(httpx.SyncByteStream):
    """A response body that gives its request slot back when it is closed."""

    def __init__(self, response: httpx.Response, release: Release) -> None:
        assert isinstance(response.stream, httpx.SyncByteStream)
        self._inner = response.stream
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._release()


class _AsyncReleasingStream(httpx.AsyncByteStream):
    """The same for asyncio: gives the request slot back when the body is closed."""

    def __init__(self, response: httpx.Response, release: Release) -> None:
        assert isinstance(response.stream, httpx.AsyncByteStream)
        self._inner = response.stream
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
        traffic: JobTraffic,
        inner: httpx.BaseTransport,
        sleep: Callable[[float], None] = clock.sleep,
        clock: Callable[[], float] = clock.perf_counter,
    ) -> None:
        self.traffic = traffic
        self.inner = inner
        self._sleep = sleep
        self._clock = clock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        driver = Driver(exchange(self.traffic, request, self._clock))
        for step in driver:
            with driver.performing():
                driver.result = self._perform(step, request)
        return driver.response(_SyncReleasingStream)

    def _perform(self, step: Step, request: httpx.Request) -> object:
        if isinstance(step, TakeSlot):
            return self.traffic.requests.acquire(step.timeout)
        if isinstance(step, TakeSharedSlot):
            return self.traffic.take_shared_slot()
        if isinstance(step, Send):
            return self.inner.handle_request(request)
        if isinstance(step, Wait):
            self._sleep(step.seconds)
        elif isinstance(step, Close):
            step.response.close()
        else:
            request.read()
        return None

    def close(self) -> None:
        self.inner.close()


class AsyncLimitedTransport(httpx.AsyncBaseTransport):
    """A job's limits around a plain ``httpx.AsyncHTTPTransport`` (asyncio tasks)."""

    def __init__(
        self,
        traffic: JobTraffic,
        inner: httpx.AsyncBaseTransport,
        clock: Callable[[], float] = clock.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.traffic = traffic
        self.inner = inner
        self._clock = clock
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        driver = Driver(exchange(self.traffic, request, self._clock))
        for step in driver:
            with driver.performing():
                driver.result = await self._perform(step, request)
        return driver.response(_AsyncReleasingStream)

    async def _perform(self, step: Step, request: httpx.Request) -> object:
        if isinstance(step, TakeSlot):
            return await self.traffic.requests.acquire_async(step.timeout)
        if isinstance(step, TakeSharedSlot):  # a blocking wait on the store: off the loop
            return await _take_off_the_loop(self.traffic.take_shared_slot)
        if isinstance(step, Send):
            return await self.inner.handle_async_request(request)
        if isinstance(step, Wait):
            await self._sleep(step.seconds)
        elif isinstance(step, Close):
            await step.response.aclose()
        else:
            await request.aread()
        return None

    async def aclose(self) -> None:
        await self.inner.aclose()


class _AbandonableTake:
    """A slot taken on another thread for a task that may be cancelled meanwhile.

    The thread cannot be stopped: if the task is gone by the time it holds the
    slot, the slot is given back there and then rather than held until the run ends.
    """

    def __init__(self, take: Callable[[], Callable[[], None]]) -> None:
        self._take = take
        self._lock = threading.Lock()
        self._abandoned = False
        self._release: Callable[[], None] | None = None

    def run(self) -> Callable[[], None]:
        release = self._take()
        with self._lock:
            if not self._abandoned:
                self._release = release
                return release
        release()
        return release

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            release, self._release = self._release, None
        if release is not None:  # taken, but the task was cancelled before it saw it
            release()


async def _take_off_the_loop(take: Callable[[], Callable[[], None]]) -> Callable[[], None]:
    """Run a blocking slot wait on a thread, keeping the loop free; cancel-safe."""
    taking = _AbandonableTake(take)
    try:
        return await asyncio.to_thread(taking.run)
    except asyncio.CancelledError:
        taking.abandon()
        raise


def default_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context, made once per CA setting rather than once per client.

    httpx builds it per transport, loading the CA bundle each time: about 20 ms of
    CPU under the GIL, paid by every async test (each has its own client). The
    context is what httpx would make ($SSL_CERT_FILE and $SSL_CERT_DIR honoured,
    read now, so a test that changes them gets a context of its own).
    """
    with _SSL_CONTEXT_LOCK:  # tests set up at once on several workers make it once
        return _ssl_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


_SSL_CONTEXT_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _ssl_context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    del cert_file, cert_dir  # the cache key: httpx reads them from the environment
    return httpx.create_ssl_context(verify=True, trust_env=True)


def make_client(traffic: JobTraffic, base_url: str) -> httpx.Client:
    """The job's shared client: one connection pool for all its tests and threads."""
    inner = httpx.HTTPTransport(
        verify=default_ssl_context(),
        limits=httpx.Limits(max_keepalive_connections=traffic.cap),
    )
    return httpx.Client(
        base_url=base_url, transport=LimitedTransport(traffic, inner), timeout=DEFAULT_TIMEOUT
    )


def make_async_client(traffic: JobTraffic, base_url: str) -> httpx.AsyncClient:
    """A client for one async test (its connections belong to that test's event loop)."""
    inner = httpx.AsyncHTTPTransport(
        verify=default_ssl_context(),
        limits=httpx.Limits(max_keepalive_connections=traffic.cap),
    )
    return httpx.AsyncClient(
        base_url=base_url,
        transport=AsyncLimitedTransport(traffic, inner),
        timeout=DEFAULT_TIMEOUT,
    )
