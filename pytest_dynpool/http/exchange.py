"""The sans-I/O core of a request under its job's limits, for both transports.

``exchange`` is a generator that makes every decision and keeps every count
(Retry-After pauses, request slots, rate tokens, adaptive retries) and yields
only the steps that block; ``transport.LimitedTransport`` performs them with
blocking calls, ``transport.AsyncLimitedTransport`` awaits them, through one
``Driver``. Nothing here does I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime

import httpx

from .. import clock
from .traffic import CURRENT_HOLDER, OVERLOAD_STATUSES, HeldSlots, JobTraffic

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_RETRIES = 5
# Wait before a retry when the server gave no Retry-After: 0.05 s, doubling, at most 1 s.
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0


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


class Release:
    """Gives a request slot back once, however often and from whichever thread it is called.

    The test that took the slot holds it too (``HeldSlots``), so that it comes
    back when that test ends even if the response is never closed.
    """

    def __init__(self, traffic: JobTraffic) -> None:
        self._lock = threading.Lock()
        self._release: Callable[[], None] | None = traffic.requests.release
        self._holder = CURRENT_HOLDER.get()
        self._request_open = False
        if self._holder is not None:
            self._holder.hold(self, traffic.name)

    def keep_request_open(self) -> None:
        """The response goes on holding the slot: for the test, its request is in progress
        (not blocked) until the slot comes back."""
        with self._lock:
            if self._release is None or self._holder is None:
                return
            self._request_open = True
            self._holder.request_started()

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
            request_open, self._request_open = self._request_open, False
        if release is None:
            return
        if self._holder is not None:
            self._holder.drop(self)
            if request_open:
                self._holder.request_ended()
        release()


# The steps ``exchange`` hands its driver; the driver sends back each one's result.
@dataclass(frozen=True)
class Wait:
    """Sleep this long (answer: None)."""

    seconds: float


@dataclass(frozen=True)
class TakeSlot:
    """Take one of the job's request slots within ``timeout`` (answer: True if taken)."""

    timeout: float | None


@dataclass(frozen=True)
class TakeSharedSlot:
    """Also take a request slot of the shared limits store, blocking (answer: what gives it
    back)."""


@dataclass(frozen=True)
class ReadBody:
    """Read the request body into memory, so it can be sent again (answer: None)."""


@dataclass(frozen=True)
class Send:
    """Send the request through the inner transport (answer: its response)."""


@dataclass(frozen=True)
class Close:
    """Close a response that will be sent again (answer: None)."""

    response: httpx.Response


Step = Wait | TakeSlot | TakeSharedSlot | ReadBody | Send | Close
ByteStream = httpx.SyncByteStream | httpx.AsyncByteStream


@dataclass(frozen=True)
class Answer:
    """The response for the caller, and the slot it still holds until it is closed."""

    response: httpx.Response
    release: Release | None


def exchange(
    traffic: JobTraffic, request: httpx.Request, clock: Callable[[], float]
) -> Generator[Step, object, Answer]:
    """One request under the job's limits, retries included, as a sans-I/O state machine.

    The running test's ``HeldSlots`` notes the request as in progress, and each step
    that waits on the job's limits as a wait (``HeldSlots.blocked_seconds``).
    """
    holder = CURRENT_HOLDER.get()
    if holder is None:
        return (yield from _exchange(traffic, request, clock, None))
    holder.request_started()
    try:
        return (yield from _exchange(traffic, request, clock, holder))
    finally:
        holder.request_ended()


def _on_limits(holder: HeldSlots | None, step: Step) -> Generator[Step, object, object]:
    """Yield ``step``, one that waits on the job's limits, as a wait of the running test."""
    if holder is None:
        return (yield step)
    holder.wait_started()
    try:
        return (yield step)
    finally:
        holder.wait_ended()


def _exchange(
    traffic: JobTraffic,
    request: httpx.Request,
    clock: Callable[[], float],
    holder: HeldSlots | None,
) -> Generator[Step, object, Answer]:
    if traffic.adaptive is not None and request.method in IDEMPOTENT_METHODS:
        yield ReadBody()  # a body we may have to send again
    attempt = 0
    while True:
        while (paused := traffic.seconds_paused()) > 0:
            yield from _on_limits(holder, Wait(paused))
        if not (yield from _on_limits(holder, TakeSlot(_pool_timeout(request)))):
            raise _slot_timeout(traffic, request)
        release = Release(traffic)
        try:
            if traffic.shared is not None:  # the shared store's slot too: both go back together
                shared_release = yield from _on_limits(holder, TakeSharedSlot())
                assert callable(shared_release)
                release.also(shared_release)
            delay = traffic.next_request_delay()
            if delay > 0:
                yield from _on_limits(holder, Wait(delay))
            while (token_wait := traffic.shared_token_wait()) > 0:
                yield from _on_limits(holder, Wait(token_wait))
            generation = traffic.generation
            started = clock()
            response = yield Send()
        except BaseException:
            release()
            traffic.record_error()
            raise
        assert isinstance(response, httpx.Response)
        latency = clock() - started
        traffic.record(response.status_code, latency, generation)
        if holder is not None:
            holder.served(traffic.name, latency)
        if not _should_retry(traffic, request, response.status_code, attempt):
            if response.is_closed or isinstance(response.stream, httpx.ByteStream):
                release()  # a body already in memory (mock transports): nothing in flight
                return Answer(response, None)
            release.keep_request_open()
            return Answer(response, release)
        attempt += 1
        traffic.record_retry()
        try:
            yield Close(response)
        finally:
            release()
        wait = _retry_wait(traffic, response, attempt)
        if wait > 0:  # the adaptive mode's back-off: a limit of the job too
            yield from _on_limits(holder, Wait(wait))


class Driver:
    """Runs ``exchange``: hands out its steps, feeds back each step's result or error."""

    def __init__(self, steps: Generator[Step, object, Answer]) -> None:
        self._steps = steps
        self.result: object = None
        self._error: BaseException | None = None
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[Step]:
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

    def response(self, hold: Callable[[httpx.Response, Release], ByteStream]) -> httpx.Response:
        """The final response; ``hold`` wraps its body when it still holds the slot."""
        assert self._answer is not None
        response, release = self._answer.response, self._answer.release
        if release is not None:
            response.stream = hold(response, release)
        return response
