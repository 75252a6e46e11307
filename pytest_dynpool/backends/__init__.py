"""Limits backends: where slots, rates and adaptive state live, so caps hold across processes.

One small interface (``LimitsBackend``) with three stores behind it:

- ``memory`` (the default): this process only, today's behaviour, near-zero cost.
- ``sqlite:///PATH``: several processes on one machine, no server.
- ``redis://HOST:PORT/DB`` (``rediss://``, credentials in the URL): several machines.

A slot is a *lease*: acquired without blocking, with an expiry, renewed by a
heartbeat (``heartbeat.LeaseKeeper``) while its test or request runs, released
at its end. A process killed with SIGKILL renews nothing, so its slots come back
when its leases expire. Times are always seconds *relative* to the store's own
clock (Redis ``TIME``, the SQLite host's clock), never compared with a client's.

Every failure to reach the store is a ``BackendError``: callers fail closed
(no slot is assumed when the store cannot say). Nothing here imports pytest.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit, urlunsplit

from .gcra import Token

# Why 10 s: the heartbeat renews every third of it (3.3 s), so a lease survives two
# missed renewals (a store or a CI machine stalled for ~6 s); a SIGKILLed process gives
# its slots back within 10 s, small beside a CI job's minutes. Shorter costs store
# traffic and risks losing slots under load; longer keeps dead slots longer.
DEFAULT_LEASE_SECONDS = 10.0
# Runs that share one store share caps unless told otherwise: the endpoint a cap
# protects is shared by every pipeline and branch that tests it.
DEFAULT_NAMESPACE = "default"
# A job's shared state (peak, effective cap, pause) is forgotten after this long unused:
# every store key has an expiry, and a later day's run starts afresh.
IDLE_SECONDS = 600.0
BACKEND_SCHEMES = ("memory", "sqlite", "redis", "rediss")
URL_HINT = (
    "give --dynpool-backend as memory, sqlite:///PATH (e.g. sqlite:///tmp/dynpool.db) "
    "or redis://HOST:PORT/DB (rediss:// for TLS); add ?lease=SECONDS to change the lease time"
)


class BackendError(Exception):
    """The limits store could not be reached or answered wrongly; no slot is assumed."""


@dataclass(frozen=True)
class Lease:
    """One slot of one job, held until released or until it expires unrenewed.

    ``token`` is unique across processes and machines; ``owner`` is
    the holder's name (``host:pid``, or the one an xdist controller gave its
    worker), kept in the store, and how ``release_holder`` finds its leases.
    """

    job: str
    token: str
    owner: str
    seconds: float


class Taken(enum.Enum):
    """A claim's answer: another process claimed (started) the item."""

    TAKEN = "taken"


TAKEN = Taken.TAKEN


@dataclass(frozen=True)
class Steal:
    """What ``ClaimingBackend.steal`` found: an item claimed with its slot, or none;
    ``left``: some candidate is still unclaimed (worth asking again after a release);
    ``claimed``: candidates seen claimed by others, which the caller need not offer again."""

    item: int | None
    lease: Lease | None
    left: bool
    claimed: tuple[int, ...] = ()


@dataclass(frozen=True)
class SharedJobState:
    """A job's adaptive state as every process sees it."""

    # The effective cap one process's adaptive controller last set; None: never set.
    effective_cap: int | None
    # Seconds new requests must still wait out a server's Retry-After (0: none).
    pause_seconds: float


@runtime_checkable
class LimitsBackend(Protocol):
    """What the runtime and the HTTP transports need from a limits store.

    Every method may raise ``BackendError``; all are safe to call from any thread.
    """

    @property
    def url(self) -> str:
        """The store's URL without its password: shown in the summary and errors."""

    @property
    def namespace(self) -> str:
        """The set of runs that share caps, rates and adaptive state in this store."""

    @property
    def lease_seconds(self) -> float:
        """How long a lease lives unrenewed (``math.inf`` when nothing can die unseen)."""

    def acquire(self, job: str, cap: int) -> Lease | None:
        """Take a slot of ``job`` if fewer than ``cap`` are held by all processes; never waits.

        Expired leases of the job are reclaimed first. None: no slot now.
        """

    def renew(self, lease: Lease) -> bool:
        """Extend ``lease`` by ``lease_seconds``; False if it had expired and was lost."""

    def release(self, lease: Lease) -> None:
        """Give the slot back at once and wake a waiter; releasing a lost lease is a no-op."""

    def wait_for_release(self, jobs: Sequence[str], timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds until a slot of one of ``jobs`` may be free.

        True when a release (or an expiry) was seen, False on timeout; either way
        the caller tries ``acquire`` again. Never a busy loop.
        """

    def take_token(self, job: str, per_second: float, burst: int) -> Token:
        """GCRA: take a rate token of ``job`` (wait 0.0) or say how many seconds until one is.

        One theoretical arrival time per job, updated atomically; a refusal
        changes nothing. ``Token.at`` is the store's clock at the decision.
        """

    def read_state(self, job: str) -> SharedJobState:
        """The job's shared effective cap and Retry-After pause."""

    def set_effective_cap(self, job: str, cap: int) -> None:
        """Publish the job's effective cap (adaptive mode) to every process."""

    def pause(self, job: str, seconds: float) -> None:
        """Hold every process's new requests of ``job`` for ``seconds`` (never shortens a pause)."""

    def in_flight(self, job: str) -> int:
        """Unexpired leases of ``job`` held by all processes now."""

    def peak(self, job: str) -> int:
        """Most leases of ``job`` the store saw held at once, all processes together."""

    def release_holder(self, holder: str, jobs: Sequence[str]) -> int:
        """Give back at once every lease ``holder`` holds, and refuse it any new one.

        For a holder whose process is gone (an xdist worker that crashed): its
        slots come back now, not at lease expiry. A thread of that process still
        running is fenced off: its renewals fail (the lease is lost) and its
        ``acquire`` raises ``BackendError``, so it can never count beside the
        cap. ``jobs`` names the jobs to look in (Redis keeps leases per job).
        Returns how many leases were given back.
        """

    def close(self) -> None:
        """Drop the connection; leases still held stay until released or expired."""


@runtime_checkable
class ClaimingBackend(LimitsBackend, Protocol):
    """A store that also claims items, so that xdist workers share one run's items.

    Each item of run ``run`` is claimed by one ``claimer`` (an xdist worker) when it
    starts, in the transaction that takes its job's slot: it runs exactly once
    whichever worker gets there first. Only the SQLite store has it (see the README).
    """

    def claim_and_acquire(
        self, run: str, item: int, claimer: str, job: str, cap: int
    ) -> Lease | Taken | None:
        """Claim ``item`` and a slot of ``job``; TAKEN if another claimer has it; None: no slot."""

    def steal(self, run: str, claimer: str, candidates: Sequence[tuple[int, str, int]]) -> Steal:
        """Claim the first unclaimed (item, job, cap) of ``candidates`` whose job has a slot."""

    def unclaim(self, run: str, items: Sequence[int], claimer: str) -> None:
        """Free the claims ``claimer`` holds on ``items``."""

    def forget_run(self, run: str) -> None:
        """Drop every claim of ``run``."""


def request_slots(job: str) -> str:
    """The store's name for a job's requests, counted apart from its tests in flight.

    A test holds its job's test slot while its requests take request slots: one
    name for both would let k tests hold all k slots and wait on themselves.
    """
    return f"{job} (requests)"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and the summary."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _lease_seconds(url: str, query: str) -> float:
    values = parse_qs(query).get("lease")
    if not values:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = float(values[-1])
    except ValueError:
        seconds = 0.0
    if not seconds >= 0.5:  # also catches nan
        raise ValueError(f"{redact(url)}: lease must be a number of seconds >= 0.5")
    return seconds


def default_holder() -> str:
    """This process's holder name in a store: ``host:pid``, kept with each lease it takes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fenced_message(holder: str) -> str:
    """Why a fenced holder (see ``LimitsBackend.release_holder``) gets no slot."""
    return (
        f"the holder {holder!r} was declared gone (its xdist worker crashed) and its "
        "leases given back; nothing more is granted to it"
    )


def open_backend(
    url: str, namespace: str = DEFAULT_NAMESPACE, holder: str | None = None
) -> LimitsBackend:
    """Open the store named by ``url`` and check that it answers.

    ``holder`` names this opener's leases (default ``host:pid``): an xdist
    controller names each worker's, to give them back if the worker crashes.

    ValueError: the URL is malformed or names no known store (message says the fix).
    BackendError: the store is unreachable (message names the URL and what to check).
    """
    if not namespace or any(ch.isspace() for ch in namespace):
        raise ValueError(f"namespace must be a non-empty name without spaces, got {namespace!r}")
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else text.lower()
    if scheme == "memory":
        from .memory import MemoryBackend

        return MemoryBackend(namespace, holder=holder)
    if scheme == "sqlite":
        from .sqlite import SqliteBackend

        parts = urlsplit(text)
        path = text[len("sqlite://") :].split("?", 1)[0]
        if not text.lower().startswith("sqlite://") or not path:
            raise ValueError(f"{text!r}: {URL_HINT}")
        return SqliteBackend(path, namespace, _lease_seconds(text, parts.query), holder=holder)
    if scheme in ("redis", "rediss"):
        from .redis import RedisBackend

        parts = urlsplit(text)
        if not parts.hostname:
            raise ValueError(f"{redact(text)!r}: {URL_HINT}")
        return RedisBackend(text, namespace, _lease_seconds(text, parts.query), holder=holder)
    raise ValueError(f"{redact(text)!r} names no known limits backend: {URL_HINT}")


__all__ = [
    "BACKEND_SCHEMES",
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_NAMESPACE",
    "IDLE_SECONDS",
    "TAKEN",
    "BackendError",
    "ClaimingBackend",
    "Lease",
    "LimitsBackend",
    "SharedJobState",
    "Steal",
    "Taken",
    "Token",
    "default_holder",
    "fenced_message",
    "open_backend",
    "redact",
    "request_slots",
]
