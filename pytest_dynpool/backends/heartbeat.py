"""Keeps held leases alive: one daemon thread renews them every third of the lease time."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from . import BackendError, Lease, LimitsBackend

# Called on the heartbeat thread with the lease, why it is gone (or may be), and
# whether the store itself failed (rather than the lease running out).
LostLease = Callable[[Lease, str, bool], None]


class LeaseKeeper:
    """The leases this process holds, renewed until dropped.

    A lease that the store no longer knows on renewal was lost (it expired,
    for example while this process stood still): ``on_lost`` hears of it, so
    the caller can say so. A store that cannot be reached is reported the same
    way, with the error, for every lease held. With a store whose leases never
    expire (memory) no thread starts.
    """

    def __init__(self, backend: LimitsBackend, on_lost: LostLease) -> None:
        self._backend = backend
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._held: dict[str, Lease] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = 0

    @property
    def interval(self) -> float:
        return self._backend.lease_seconds / 3

    def hold(self, lease: Lease) -> None:
        """Renew ``lease`` from now on, until ``drop``."""
        with self._lock:
            self._held[lease.token] = lease
            if self._thread is None and math.isfinite(self.interval) and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="dynpool-lease-heartbeat", daemon=True
                )
                self._thread.start()

    def drop(self, lease: Lease) -> None:
        """Stop renewing ``lease`` (it is being released)."""
        with self._lock:
            self._held.pop(lease.token, None)

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._held.values())

    def renew_all(self) -> None:
        """One round of renewals (the thread's loop body; tests call it directly)."""
        for lease in self.held():
            try:
                kept = self._backend.renew(lease)
            except BackendError as error:
                self._lose(lease, f"the store did not answer the renewal: {error}", True)
                continue
            if not kept:
                self._lose(lease, "its lease expired before it was renewed", False)

    def _lose(self, lease: Lease, reason: str, store_failed: bool) -> None:
        with self._lock:
            if self._held.pop(lease.token, None) is None:
                return  # released meanwhile: nothing was lost
            self.lost += 1
        self._on_lost(lease, reason, store_failed)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.renew_all()

    def close(self) -> None:
        """Stop the thread; the caller releases what is still held."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.interval + 5.0)
