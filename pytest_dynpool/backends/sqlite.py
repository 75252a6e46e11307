"""Limits in one SQLite file: several processes on one machine, no server.

Standard-library ``sqlite3`` in WAL mode; every operation is one short
``BEGIN IMMEDIATE`` transaction, so writers queue on SQLite's own lock and
never see a half-done update. Leases are rows (token, owner ``host:pid``,
expiry); a refused or granted ``acquire`` first deletes the job's expired rows,
which is how a killed process's slots come back. Time is this machine's wall
clock, the one clock every process on it shares. SQLite cannot notify, so a
waiter polls a per-job release counter with backoff and jitter.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from .. import clock
from . import (
    IDLE_SECONDS,
    TAKEN,
    BackendError,
    Lease,
    SharedJobState,
    Steal,
    Taken,
    default_holder,
    fenced_message,
)
from .gcra import Clock, Token, check_rate, gcra_step
from .waiting import ReleaseMarks, poll_delays

_T = TypeVar("_T")
# How long a transaction waits for another process's lock before the store counts as lost.
BUSY_TIMEOUT_SECONDS = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dynpool_leases (
    namespace TEXT NOT NULL, job TEXT NOT NULL, token TEXT PRIMARY KEY,
    owner TEXT NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS dynpool_leases_by_job ON dynpool_leases (namespace, job, expires);
CREATE TABLE IF NOT EXISTS dynpool_jobs (
    namespace TEXT NOT NULL, job TEXT NOT NULL,
    peak INTEGER NOT NULL DEFAULT 0, releases INTEGER NOT NULL DEFAULT 0,
    tat REAL, effective_cap INTEGER, paused_until REAL NOT NULL DEFAULT 0,
    touched REAL NOT NULL, PRIMARY KEY (namespace, job));
CREATE TABLE IF NOT EXISTS dynpool_fenced (
    namespace TEXT NOT NULL, holder TEXT NOT NULL, touched REAL NOT NULL,
    PRIMARY KEY (namespace, holder));
CREATE TABLE IF NOT EXISTS dynpool_claims (
    run TEXT NOT NULL, item INTEGER NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (run, item));
"""
_TOUCH = (
    "INSERT INTO dynpool_jobs (namespace, job, touched) VALUES (?, ?, ?) "
    "ON CONFLICT (namespace, job) DO UPDATE SET touched = excluded.touched"
)


class SqliteBackend:
    """A ``LimitsBackend`` in the SQLite file at ``path``, shared by every process that opens it."""

    def __init__(
        self,
        path: str,
        namespace: str,
        lease_seconds: float,
        clock: Clock = clock.wall_time,
        holder: str | None = None,
    ) -> None:
        self.url = f"sqlite://{path}"
        self.namespace = namespace
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._owner = holder or default_holder()
        self._lock = threading.Lock()
        self._marks = ReleaseMarks()
        try:
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise self._cannot_open(error) from error
        try:
            self._set_up()
        except sqlite3.Error as error:
            self._db.close()  # not left for the garbage collector (Python 3.13 warns)
            raise self._cannot_open(error) from error

    def _cannot_open(self, error: sqlite3.Error) -> BackendError:
        return BackendError(
            f"{self.url}: cannot open the SQLite limits store ({error}); "
            "check that its directory exists and is writable"
        )

    def _set_up(self) -> None:
        """WAL mode and the tables, retried while other processes do the same.

        Switching a new file to WAL takes an exclusive lock without waiting on
        SQLite's busy timeout, so processes that open a new store together get
        "database is locked" at once: they retry, with backoff and jitter.
        """
        deadline = clock.monotonic() + BUSY_TIMEOUT_SECONDS
        for delay in poll_delays():
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                with self._transaction() as db:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    stale = self._clock() - IDLE_SECONDS
                    db.execute("DELETE FROM dynpool_jobs WHERE touched < ?", (stale,))
                    db.execute("DELETE FROM dynpool_fenced WHERE touched < ?", (stale,))
                return
            except sqlite3.OperationalError as error:
                locked = "locked" in str(error) or "busy" in str(error)
                if not locked or clock.monotonic() > deadline:
                    raise
            clock.sleep(delay)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _run(self, operation: Callable[[sqlite3.Connection, float], _T]) -> _T:
        """Run ``operation(db, now)`` in one transaction; any SQLite failure is a BackendError."""
        try:
            with self._transaction() as db:
                return operation(db, self._clock())
        except sqlite3.Error as error:
            raise BackendError(f"{self.url}: the SQLite limits store failed: {error}") from error

    def _key(self, job: str) -> tuple[str, str]:
        return (self.namespace, job)

    def _acquire_in(self, db: sqlite3.Connection, now: float, job: str, cap: int) -> Lease | None:
        """A slot of ``job`` inside the caller's transaction, or None (refused)."""
        key = self._key(job)
        db.execute(_TOUCH, (*key, now))
        db.execute(
            "DELETE FROM dynpool_leases WHERE namespace = ? AND job = ? AND expires <= ?",
            (*key, now),
        )
        # One statement: the slots held, and whether this holder was fenced off
        # (``release_holder``); then nothing is granted to it (rolled back).
        held, fenced = db.execute(
            "SELECT COUNT(*), EXISTS (SELECT 1 FROM dynpool_fenced "
            "WHERE namespace = ? AND holder = ?) "
            "FROM dynpool_leases WHERE namespace = ? AND job = ?",
            (self.namespace, self._owner, *key),
        ).fetchone()
        if fenced:
            raise BackendError(f"{self.url}: {fenced_message(self._owner)}")
        if held >= cap:
            (releases,) = db.execute(
                "SELECT releases FROM dynpool_jobs WHERE namespace = ? AND job = ?", key
            ).fetchone()
            self._marks.refused(job, releases)
            return None
        token = uuid.uuid4().hex
        db.execute(
            "INSERT INTO dynpool_leases VALUES (?, ?, ?, ?, ?)",
            (*key, token, self._owner, now + self.lease_seconds),
        )
        db.execute(
            "UPDATE dynpool_jobs SET peak = MAX(peak, ?) WHERE namespace = ? AND job = ?",
            (held + 1, *key),
        )
        return Lease(job, token, self._owner, self.lease_seconds)

    def acquire(self, job: str, cap: int) -> Lease | None:
        return self._run(lambda db, now: self._acquire_in(db, now, job, cap))

    def claim_and_acquire(
        self, run: str, item: int, claimer: str, job: str, cap: int
    ) -> Lease | Taken | None:
        """Claim ``item`` of ``run`` for ``claimer`` and take a slot of ``job``, in one step.

        TAKEN: another claimer has it. None: no slot now, and the item stays unclaimed
        (a claim means the item started, so a crash leaves no claimed item unstarted).
        """

        def claim(db: sqlite3.Connection, now: float) -> Lease | Taken | None:
            row = db.execute(
                "SELECT owner FROM dynpool_claims WHERE run = ? AND item = ?", (run, item)
            ).fetchone()
            if row is not None and row[0] != claimer:
                return TAKEN
            lease = self._acquire_in(db, now, job, cap)
            if lease is not None and row is None:
                db.execute("INSERT INTO dynpool_claims VALUES (?, ?, ?)", (run, item, claimer))
            return lease

        return self._run(claim)

    def steal(self, run: str, claimer: str, candidates: Sequence[tuple[int, str, int]]) -> Steal:
        """The first of ``candidates`` (item, job, cap) nobody claimed whose job has a slot now.

        Claimed with its slot in one transaction.
        """

        def steal(db: sqlite3.Connection, now: float) -> Steal:
            full: set[str] = set()
            claimed: list[int] = []
            left = False
            for item, job, cap in candidates:  # one indexed look-up each, in order
                taken = db.execute(
                    "SELECT 1 FROM dynpool_claims WHERE run = ? AND item = ?", (run, item)
                ).fetchone()
                if taken is not None:
                    claimed.append(item)
                    continue
                left = True
                if job in full:
                    continue
                lease = self._acquire_in(db, now, job, cap)
                if lease is None:
                    full.add(job)
                    continue
                db.execute("INSERT INTO dynpool_claims VALUES (?, ?, ?)", (run, item, claimer))
                return Steal(item, lease, left=True, claimed=tuple(claimed))
            return Steal(None, None, left=left, claimed=tuple(claimed))

        return self._run(steal)

    def unclaim(self, run: str, items: Sequence[int], claimer: str) -> None:
        """Free ``claimer``'s claims of ``items`` (a crashed worker's, to run them again)."""

        def unclaim(db: sqlite3.Connection, now: float) -> None:
            db.executemany(
                "DELETE FROM dynpool_claims WHERE run = ? AND item = ? AND owner = ?",
                [(run, item, claimer) for item in items],
            )

        self._run(unclaim)

    def forget_run(self, run: str) -> None:
        """Drop every claim of ``run`` (it has ended)."""
        self._run(lambda db, now: db.execute("DELETE FROM dynpool_claims WHERE run = ?", (run,)))

    def renew(self, lease: Lease) -> bool:
        def renew(db: sqlite3.Connection, now: float) -> bool:
            cursor = db.execute(
                "UPDATE dynpool_leases SET expires = ? WHERE token = ? AND expires > ?",
                (now + self.lease_seconds, lease.token, now),
            )
            return cursor.rowcount == 1

        return self._run(renew)

    def release(self, lease: Lease) -> None:
        key = self._key(lease.job)

        def release(db: sqlite3.Connection, now: float) -> None:
            cursor = db.execute("DELETE FROM dynpool_leases WHERE token = ?", (lease.token,))
            if cursor.rowcount:
                db.execute(
                    "UPDATE dynpool_jobs SET releases = releases + 1, touched = ? "
                    "WHERE namespace = ? AND job = ?",
                    (now, *key),
                )

        self._run(release)

    def release_holder(self, holder: str, jobs: Sequence[str]) -> int:
        """Every lease of ``holder`` in this namespace, whatever its job (``jobs`` unused)."""

        def release(db: sqlite3.Connection, now: float) -> int:
            db.execute(
                "INSERT INTO dynpool_fenced VALUES (?, ?, ?) ON CONFLICT (namespace, holder) "
                "DO UPDATE SET touched = excluded.touched",
                (self.namespace, holder, now),
            )
            counts = db.execute(
                "SELECT job, COUNT(*) FROM dynpool_leases WHERE namespace = ? AND owner = ? "
                "GROUP BY job",
                (self.namespace, holder),
            ).fetchall()
            db.execute(
                "DELETE FROM dynpool_leases WHERE namespace = ? AND owner = ?",
                (self.namespace, holder),
            )
            for job, _ in counts:  # wakes every waiter of the job, as a release does
                db.execute(
                    "UPDATE dynpool_jobs SET releases = releases + 1, touched = ? "
                    "WHERE namespace = ? AND job = ?",
                    (now, *self._key(job)),
                )
            return sum(int(count) for _, count in counts)

        return self._run(release)

    def _release_view(self, jobs: Sequence[str]) -> tuple[dict[str, int], float]:
        """Each job's release count, and the seconds until its next lease expires."""

        def view(db: sqlite3.Connection, now: float) -> tuple[dict[str, int], float]:
            counts: dict[str, int] = {}
            soonest = float("inf")
            for job in jobs:
                row = db.execute(
                    "SELECT releases, (SELECT MIN(expires) FROM dynpool_leases l "
                    "WHERE l.namespace = j.namespace AND l.job = j.job) "
                    "FROM dynpool_jobs j WHERE namespace = ? AND job = ?",
                    self._key(job),
                ).fetchone()
                counts[job] = row[0] if row else 0
                if row and row[1] is not None:
                    soonest = min(soonest, row[1] - now)
            return counts, soonest

        try:
            with self._lock:  # a read: no write lock needed, WAL readers never block
                return view(self._db, self._clock())
        except sqlite3.Error as error:
            raise BackendError(f"{self.url}: the SQLite limits store failed: {error}") from error

    def wait_for_release(self, jobs: Sequence[str], timeout: float) -> bool:
        deadline = clock.monotonic() + max(0.0, timeout)
        for delay in poll_delays():
            counts, next_expiry = self._release_view(jobs)
            if self._marks.changed(counts) or next_expiry <= 0:
                return True
            left = deadline - clock.monotonic()
            if left <= 0:
                return False
            clock.sleep(min(delay, left, max(next_expiry, 0.0)))
        raise AssertionError("poll_delays never ends")

    def take_token(self, job: str, per_second: float, burst: int) -> Token:
        check_rate(per_second, burst)
        key = self._key(job)

        def take(db: sqlite3.Connection, now: float) -> Token:
            db.execute(_TOUCH, (*key, now))
            (tat,) = db.execute(
                "SELECT tat FROM dynpool_jobs WHERE namespace = ? AND job = ?", key
            ).fetchone()
            decision = gcra_step(tat, now, per_second, burst)
            if decision.wait == 0.0:
                db.execute(
                    "UPDATE dynpool_jobs SET tat = ? WHERE namespace = ? AND job = ?",
                    (decision.tat, *key),
                )
            return Token(decision.wait, now)  # ``now`` is read inside BEGIN IMMEDIATE

        return self._run(take)

    def read_state(self, job: str) -> SharedJobState:
        def read(db: sqlite3.Connection, now: float) -> SharedJobState:
            row = db.execute(
                "SELECT effective_cap, paused_until FROM dynpool_jobs "
                "WHERE namespace = ? AND job = ?",
                self._key(job),
            ).fetchone()
            if row is None:
                return SharedJobState(None, 0.0)
            return SharedJobState(row[0], max(0.0, row[1] - now))

        return self._run(read)

    def set_effective_cap(self, job: str, cap: int) -> None:
        key = self._key(job)

        def publish(db: sqlite3.Connection, now: float) -> None:
            db.execute(_TOUCH, (*key, now))
            db.execute(
                "UPDATE dynpool_jobs SET effective_cap = ? WHERE namespace = ? AND job = ?",
                (cap, *key),
            )

        self._run(publish)

    def pause(self, job: str, seconds: float) -> None:
        key = self._key(job)

        def pause(db: sqlite3.Connection, now: float) -> None:
            db.execute(_TOUCH, (*key, now))
            db.execute(
                "UPDATE dynpool_jobs SET paused_until = MAX(paused_until, ?) "
                "WHERE namespace = ? AND job = ?",
                (now + max(0.0, seconds), *key),
            )

        self._run(pause)

    def in_flight(self, job: str) -> int:
        def count(db: sqlite3.Connection, now: float) -> int:
            (held,) = db.execute(
                "SELECT COUNT(*) FROM dynpool_leases WHERE namespace = ? AND job = ? "
                "AND expires > ?",
                (*self._key(job), now),
            ).fetchone()
            return int(held)

        return self._run(count)

    def peak(self, job: str) -> int:
        def read(db: sqlite3.Connection, now: float) -> int:
            row = db.execute(
                "SELECT peak FROM dynpool_jobs WHERE namespace = ? AND job = ?", self._key(job)
            ).fetchone()
            return int(row[0]) if row else 0

        return self._run(read)

    def close(self) -> None:
        with self._lock:
            self._db.close()
