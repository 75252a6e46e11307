"""httpx transports that send a job's requests under the job's limits.

Every request of a job, from any test, thread or task, first waits out a
server's Retry-After, then takes one of the job's request slots (at most the
effective cap in flight), then a rate token if the job has a rate. The slot is
held until the response is closed, which httpx does once the body is read.

In adaptive mode 429 and 503 answers halve the effective cap, other answers
grow it again (see ``limits.AdaptiveCap``), and idempotent requests answered
429/503 are sent again, up to ``MAX_RETRIES`` times, so that the test sees the
final answer. Jobs that are not adaptive get the server's answers untouched.

Threads and asyncio share one core, ``_exchange``: a generator that makes every
decision and keeps every count, and yields the few steps that block (wait, take
a slot, read the body, send, close). ``LimitedTransport`` performs those steps
with blocking calls, ``AsyncLimitedTransport`` awaits them; neither decides.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime

import httpx

from .. import clock
from .traffic import CURRENT_HOLDER, OVERLOAD_STATUSES, JobTraffic

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_RETRIES = 5
# Wait before a retry when the server gave no Retry-After: 0.05 s, doubling, at most 1 s.
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def retry_after_seconds(
    response: httpx.Response, wall_clock: Callable[[], float] = clock.wall_time
) -> float | None:
    """The wait a Retry-After header asks for, in seconds, or None when it gives none.

    Seconds (``"3"``) are taken as they are. An HTTP date counts from the
    response's own ``Date`` (the server's clock, so clocks that disagree do not
    matter), else from ``wall_clock``. None when absent, unreadable, or a date
    already past: the caller then backs off as if the server had said nothing.
    """
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    until = _http_date(value)
    if until is None:
        return None
    now = _http_date(response.headers.get("Date", ""))
    seconds = until - (wall_clock() if now is None else now)
    return seconds if seconds > 0 else None


def _http_date(value: str) -> float | None:
    """An HTTP date (RFC 9110, e.g. ``Tue, 01 Dec 2026 00:30:03 GMT``) as a timestamp."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": UTC with no zone said
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def backoff_seconds(attempt: int) -> float:
    """Wait before retry number ``attempt`` (1-based) when the server said nothing."""
    return float(min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1)))


def _should_retry(traffic: JobTraffic, request: httpx.Request, status: int, attempt: int) -> bool:
    return (
        traffic.adaptive is not None
        and request.method in IDEMPOTENT_METHODS
        and status in OVERLOAD_STATUSES
        and attempt < MAX_RETRIES
    )


def _retry_wait(traffic: JobTraffic, response: httpx.Response, attempt: int) -> float:
    retry_after = retry_after_seconds(response)
    if retry_after is None:
        return backoff_seconds(attempt)
    traffic.pause_for(retry_after)  # the whole job waits; seconds_paused() covers this request
    return 0.0


def _pool_timeout(request: httpx.Request) -> float | None:
    """The client's pool timeout also bounds the wait for one of the job's request slots."""
    timeouts = request.extensions.get("timeout", {})
    value = timeouts.get("pool") if isinstance(timeouts, dict) else None
    return float(value) if value is not None else None


def _slot_timeout(traffic: JobTraffic, request: httpx.Request) -> httpx.PoolTimeout:
    # E.g. a second request inside a client.stream() block of a job with cap 1.
    return httpx.PoolTimeout(
        f"waited the pool timeout for one of dynpool job {traffic.name!r}'s "
        f"{traffic.effective_cap} request slots; all stayed in use (a response left open?)",
        request=request,
    )


class _Release:
    """Gives a request slot back once, however often and from whichever thread it is called.

    The test that took the slot holds it too (``HeldSlots``), so that it comes
    back when that test ends even if the response is never closed.
    """

    def __init__(self, traffic: JobTraffic) -> None:
        self._lock = threading.Lock()
        self._release: Callable[[], None] | None = traffic.requests.release
        self._holder = CURRENT_HOLDER.get()
        if self._holder is not None:
            self._holder.hold(self, traffic.name)

    def also(self, release_shared: Callable[[], None]) -> None:
        """Give back a slot of the shared limits store too, first (issue 12)."""
        with self._lock:
            local = self._release
            if local is None:  # already given back: give this one back at once
                release_shared()
                return

            def both() -> None:
                try:
                    release_shared()
                finally:
                    local()

            self._release = both

    def __call__(self) -> None:
        with self._lock:
            release, self._release = self._release, None
        if release is None:
            return
        if self._holder is not None:
            self._holder.drop(self)
        release()


# The steps ``_exchange`` hands its driver; the driver sends back each one's result.
@dataclass(frozen=True)
class _Wait:
    """Sleep this long (answer: None)."""

    seconds: float


@dataclass(frozen=True)
class _TakeSlot:
    """Take one of the job's request slots within ``timeout`` (answer: True if taken)."""

    timeout: float | None


@dataclass(frozen=True)
class _TakeSharedSlot:
    """Also take a request slot of the shared limits store, blocking (answer: what gives it
    back)."""


@dataclass(frozen=True)
class _ReadBody:
    """Read the request body into memory, so it can be sent again (answer: None)."""


@dataclass(frozen=True)
class _Send:
    """Send the request through the inner transport (answer: its response)."""


@dataclass(frozen=True)
class _Close:
    """Close a response that will be sent again (answer: None)."""

    response: httpx.Response


_Step = _Wait | _TakeSlot | _TakeSharedSlot | _ReadBody | _Send | _Close
_ByteStream = httpx.SyncByteStream | httpx.AsyncByteStream


@dataclass(frozen=True)
class _Answer:
    """The response for the caller, and the slot it still holds until it is closed."""

    response: httpx.Response
    release: _Release | None


def _exchange(
    traffic: JobTraffic, request: httpx.Request, clock: Callable[[], float]
) -> Generator[_Step, object, _Answer]:
    """One request under the job's limits, retries included, as a sans-I/O state machine."""
    if traffic.adaptive is not None and request.method in IDEMPOTENT_METHODS:
        yield _ReadBody()  # a body we may have to send again
    attempt = 0
    while True:
        while (paused := traffic.seconds_paused()) > 0:
            yield _Wait(paused)
        if not (yield _TakeSlot(_pool_timeout(request))):
            raise _slot_timeout(traffic, request)
        release = _Release(traffic)
        try:
            if traffic.shared is not None:  # the shared store's slot too: both go back together
                shared_release = yield _TakeSharedSlot()
                assert callable(shared_release)
                release.also(shared_release)
            delay = traffic.next_request_delay()
            if delay > 0:
                yield _Wait(delay)
            while (token_wait := traffic.shared_token_wait()) > 0:
                yield _Wait(token_wait)
            generation = traffic.generation
            started = clock()
            response = yield _Send()
        except BaseException:
            release()
            traffic.record_error()
            raise
        assert isinstance(response, httpx.Response)
        traffic.record(response.status_code, clock() - started, generation)
        if not _should_retry(traffic, request, response.status_code, attempt):
            if response.is_closed or isinstance(response.stream, httpx.ByteStream):
                release()  # a body already in memory (mock transports): nothing in flight
                return _Answer(response, None)
            return _Answer(response, release)
        attempt += 1
        traffic.record_retry()
        try:
            yield _Close(response)
        finally:
            release()
        wait = _retry_wait(traffic, response, attempt)
        if wait > 0:
            yield _Wait(wait)


class _Driver:
    """Runs ``_exchange``: hands out its steps, feeds back each step's result or error."""

    def __init__(self, steps: Generator[_Step, object, _Answer]) -> None:
        self._steps = steps
        self.result: object = None
        self._error: BaseException | None = None
        self._answer: _Answer | None = None

    def __iter__(self) -> Iterator[_Step]:
        while True:
            error, self._error = self._error, None
            try:
                if error is not None:
                    step = self._steps.throw(error)
                else:
                    step = self._steps.send(self.result)
            except StopIteration as done:
                self._answer = done.value
                return
            self.result = None
            yield step

    @contextmanager
    def performing(self) -> Iterator[None]:
        """Around one step: its error goes back into the core, which decides what it means."""
        try:
            yield
        except BaseException as error:
            self._error = error

    def response(self, hold: Callable[[httpx.Response, _Release], _ByteStream]) -> httpx.Response:
        """The final response; ``hold`` wraps its body when it still holds the slot."""
        assert self._answer is not None
        response, release = self._answer.response, self._answer.release
        if release is not None:
            response.stream = hold(response, release)
        return response


class _SyncReleasingStream(httpx.SyncByteStream):
    """A response body that gives its request slot back when it is closed."""

    def __init__(self, response: httpx.Response, release: _Release) -> None:
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

    def __init__(self, response: httpx.Response, release: _Release) -> None:
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
        driver = _Driver(_exchange(self.traffic, request, self._clock))
        for step in driver:
            with driver.performing():
                driver.result = self._perform(step, request)
        return driver.response(_SyncReleasingStream)

    def _perform(self, step: _Step, request: httpx.Request) -> object:
        if isinstance(step, _TakeSlot):
            return self.traffic.requests.acquire(step.timeout)
        if isinstance(step, _TakeSharedSlot):
            return self.traffic.take_shared_slot()
        if isinstance(step, _Send):
            return self.inner.handle_request(request)
        if isinstance(step, _Wait):
            self._sleep(step.seconds)
        elif isinstance(step, _Close):
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
        driver = _Driver(_exchange(self.traffic, request, self._clock))
        for step in driver:
            with driver.performing():
                driver.result = await self._perform(step, request)
        return driver.response(_AsyncReleasingStream)

    async def _perform(self, step: _Step, request: httpx.Request) -> object:
        if isinstance(step, _TakeSlot):
            return await self.traffic.requests.acquire_async(step.timeout)
        if isinstance(step, _TakeSharedSlot):  # a blocking wait on the store: off the loop
            return await _take_off_the_loop(self.traffic.take_shared_slot)
        if isinstance(step, _Send):
            return await self.inner.handle_async_request(request)
        if isinstance(step, _Wait):
            await self._sleep(step.seconds)
        elif isinstance(step, _Close):
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


def make_client(traffic: JobTraffic, base_url: str) -> httpx.Client:
    """The job's shared client: one connection pool for all its tests and threads."""
    inner = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=traffic.cap))
    return httpx.Client(
        base_url=base_url, transport=LimitedTransport(traffic, inner), timeout=DEFAULT_TIMEOUT
    )


def make_async_client(traffic: JobTraffic, base_url: str) -> httpx.AsyncClient:
    """A client for one async test (its connections belong to that test's event loop)."""
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=traffic.cap))
    return httpx.AsyncClient(
        base_url=base_url,
        transport=AsyncLimitedTransport(traffic, inner),
        timeout=DEFAULT_TIMEOUT,
    )
