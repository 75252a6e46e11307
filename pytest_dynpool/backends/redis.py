"""Limits in Redis: the store for several machines (``pip install 'pytest-dynpool[redis]'``).

A counting semaphore with leases: a sorted set per job (member = lease token,
score = expiry). Every operation is one Lua script (``redis_scripts``), so it
is atomic and reads Redis's clock. Keys are ``dynpool:NAMESPACE:{JOB}:...``:
the namespace separates sets of runs, the ``{JOB}`` hash tag keeps a job's
keys together on a cluster, and each key expires when left alone. A release
pushes a wake-up on the job's list; waiters block on it (``BLPOP``).
A single instance is enough: going over a cap costs a 429, not corrupted data.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from . import (
    IDLE_SECONDS,
    BackendError,
    Lease,
    SharedJobState,
    default_holder,
    fenced_message,
    redact,
)
from . import redis_scripts as lua
from .gcra import Token, check_rate

INSTALL_HINT = "the redis backend needs the redis package: pip install 'pytest-dynpool[redis]'"
# A store that does not answer within this is lost: fail closed rather than wait on.
SOCKET_TIMEOUT_SECONDS = 5.0
# One BLPOP blocks at most this long, well inside the socket timeout.
LONGEST_BLOCK_SECONDS = 2.0
MIN_BLOCK_SECONDS = 0.01
_MICROS = 1_000_000


def _client_url(url: str) -> str:
    """The URL for redis-py: our own ``lease`` option taken out of the query.

    Every other option goes through, so ``rediss://...?ssl_ca_certs=CA.pem`` can
    trust a private CA (redis-py's ``from_url`` reads it).
    """
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query) if name != "lease"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _escape(name: str) -> str:
    """Braces would end the hash tag early, colons blur the key's parts: escape both."""
    return name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D").replace(":", "%3A")


class RedisBackend:
    """A ``LimitsBackend`` in one Redis instance shared by every process and machine."""

    def __init__(
        self, url: str, namespace: str, lease_seconds: float, holder: str | None = None
    ) -> None:
        try:
            import redis
            from redis.backoff import ConstantBackoff
            from redis.retry import Retry
        except ImportError as error:
            raise BackendError(f"{redact(url)}: {INSTALL_HINT}") from error
        self.url = redact(url)
        self.namespace = namespace
        self.lease_seconds = lease_seconds
        self._lease_us = round(lease_seconds * _MICROS)
        self._idle_ms = round(IDLE_SECONDS * 1000)
        self._wake_ms = round(lease_seconds * 1000)
        self._owner = holder or default_holder()
        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        try:
            self._client = redis.Redis.from_url(
                _client_url(url),
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                # One quick retry of a dropped connection; a store that stays away is lost.
                retry=Retry(ConstantBackoff(0.05), 1),
            )
            self._client.ping()
        except (redis.RedisError, ValueError) as error:
            raise BackendError(
                f"{self.url}: cannot reach the Redis limits store ({error}); check that the "
                "server runs and that host, port, database and password in the URL are right"
            ) from error
        except TypeError as error:  # an option redis-py's connection does not take
            raise BackendError(
                f"{self.url}: an option in the URL's query is not one redis-py knows ({error}); "
                "see redis.Redis.from_url for the options, e.g. ?ssl_ca_certs=PATH for rediss://"
            ) from error
        self._scripts = {
            name: self._client.register_script(text)
            for name, text in (
                ("acquire", lua.ACQUIRE),
                ("renew", lua.RENEW),
                ("release", lua.RELEASE),
                ("release_holder", lua.RELEASE_HOLDER),
                ("next_expiry", lua.NEXT_EXPIRY),
                ("take_token", lua.TAKE_TOKEN),
                ("read_state", lua.READ_STATE),
                ("set_cap", lua.SET_CAP),
                ("pause", lua.PAUSE),
                ("in_flight", lua.IN_FLIGHT),
            )
        }

    def _key(self, job: str, part: str) -> str:
        return f"dynpool:{_escape(self.namespace)}:{{{_escape(job)}}}:{part}"

    def _call(self, script: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        try:
            return self._scripts[script](keys=list(keys), args=list(args))
        except self._errors as error:
            raise BackendError(f"{self.url}: the Redis limits store failed: {error}") from error

    def acquire(self, job: str, cap: int) -> Lease | None:
        token = f"{self._owner}/{uuid.uuid4().hex}"
        granted, _ = self._call(
            "acquire",
            [self._key(job, "leases"), self._key(job, "state"), self._key(job, "fenced")],
            [token, cap, self._lease_us, self._idle_ms, self._owner],
        )
        if int(granted) < 0:
            raise BackendError(f"{self.url}: {fenced_message(self._owner)}")
        if not granted:
            return None
        return Lease(job, token, self._owner, self.lease_seconds)

    def renew(self, lease: Lease) -> bool:
        kept = self._call("renew", [self._key(lease.job, "leases")], [lease.token, self._lease_us])
        return bool(kept)

    def release(self, lease: Lease) -> None:
        job = lease.job
        self._call(
            "release",
            [self._key(job, "leases"), self._key(job, "state"), self._key(job, "wake")],
            [lease.token, self._idle_ms, self._wake_ms],
        )

    def release_holder(self, holder: str, jobs: Sequence[str]) -> int:
        removed = 0
        for job in jobs:
            keys = [self._key(job, part) for part in ("leases", "state", "wake", "fenced")]
            args: list[str | int] = [f"{holder}/", self._idle_ms, self._wake_ms, holder]
            removed += int(self._call("release_holder", keys, args))
        return removed

    def wait_for_release(self, jobs: Sequence[str], timeout: float) -> bool:
        if not jobs:
            return False
        # A crashed holder pushes no wake-up: sleep no longer than until its lease expires.
        block = min(max(0.0, timeout), LONGEST_BLOCK_SECONDS)
        for job in jobs:
            micros = int(self._call("next_expiry", [self._key(job, "leases")], []))
            if micros >= 0:
                block = min(block, micros / _MICROS)
        if block <= 0:
            return True
        block = max(block, MIN_BLOCK_SECONDS)  # BLPOP would read anything under 1 ms as "forever"
        try:
            woken = self._client.blpop([self._key(job, "wake") for job in jobs], block)
        except self._errors as error:
            raise BackendError(f"{self.url}: the Redis limits store failed: {error}") from error
        return woken is not None

    def take_token(self, job: str, per_second: float, burst: int) -> Token:
        check_rate(per_second, burst)
        interval_us = _MICROS / per_second
        wait_us, now_us = self._call(
            "take_token", [self._key(job, "tat")], [interval_us, interval_us * (burst - 1)]
        )
        return Token(int(wait_us) / _MICROS, int(now_us) / _MICROS)

    def read_state(self, job: str) -> SharedJobState:
        cap, pause_us = self._call("read_state", [self._key(job, "state")], [])
        return SharedJobState(None if int(cap) < 0 else int(cap), int(pause_us) / _MICROS)

    def set_effective_cap(self, job: str, cap: int) -> None:
        self._call("set_cap", [self._key(job, "state")], [cap, self._idle_ms])

    def pause(self, job: str, seconds: float) -> None:
        pause_us = round(max(0.0, seconds) * _MICROS)
        self._call("pause", [self._key(job, "state")], [pause_us, self._idle_ms])

    def in_flight(self, job: str) -> int:
        return int(self._call("in_flight", [self._key(job, "leases")], []))

    def peak(self, job: str) -> int:
        try:
            value = self._client.hget(self._key(job, "state"), "peak")
        except self._errors as error:
            raise BackendError(f"{self.url}: the Redis limits store failed: {error}") from error
        return int(value) if value is not None else 0

    def close(self) -> None:
        self._client.close()
