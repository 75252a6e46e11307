"""Balance under ``-n``: a worker whose own items are all started takes another's.

The controller's partition (``xdist_partition``) is each worker's preference,
written to the side channel (``parts.json``). With the run's SQLite store every
worker's plan holds its own share and, held back, the pooled items of the other
shares; an item is claimed in the store as it starts, with its slot
(``backends.claims``), so it runs in exactly one worker and an item claimed
elsewhere is dropped. Off (each worker runs its share alone, as before) with
``--dynpool-xdist-balance=fixed``, with a Redis store (its scripts do not claim
items yet), and for jobs with a rate (their start tokens are taken apart from
the claim). Exclusive (unmarked) items never move: xdist's rule, one at a time
per worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import pytest

from .backends import BackendError
from .limits_store import STORE_SETTINGS_KEY, StoreSettings
from .options import add_flag_env_ini, flag_env_ini

if TYPE_CHECKING:
    from .backends import ClaimingBackend

BALANCE_ENV = "DYNPOOL_XDIST_BALANCE"
BALANCE_CHOICES = ("steal", "fixed")


def add_balance_option(parser: pytest.Parser) -> None:
    add_flag_env_ini(
        parser,
        "--dynpool-xdist-balance",
        "dynpool_xdist_balance",
        BALANCE_ENV,
        "steal|fixed",
        "Under -n with an SQLite store: steal (the default) lets a worker whose own items "
        "have all started run another worker's unstarted ones; fixed keeps every item "
        "in the worker it was sent to.",
    )


def steals(config: pytest.Config, store_url: str | None = None) -> bool:
    """True when this run's workers share items through claims in the store.

    ``store_url``: the run's store (the controller's choice); else this worker's.
    """
    chosen = flag_env_ini(config, "dynpool_xdist_balance", BALANCE_ENV).strip() or "steal"
    if chosen not in BALANCE_CHOICES:
        raise pytest.UsageError(
            f"--dynpool-xdist-balance / {BALANCE_ENV} / dynpool_xdist_balance: "
            f"expected steal or fixed, got {chosen!r}"
        )
    if store_url is None:
        settings = config.stash.get(STORE_SETTINGS_KEY, None)
        store_url = settings.url if settings is not None else ""
    return chosen == "steal" and store_url.startswith("sqlite:")


def steal_order(
    worker: str, parts: Mapping[str, Sequence[int]], stealable: Iterable[int]
) -> list[int]:
    """The other shares' stealable items, each share from its far end, interleaved.

    An owner runs its share roughly front to back, so a thief that starts at the
    back meets it as late as possible; interleaving spreads the theft over the shares.
    """
    allowed = set(stealable)
    tails = [
        [index for index in reversed(part) if index in allowed]
        for other, part in sorted(parts.items())
        if other != worker
    ]
    order: list[int] = []
    seen: set[int] = set()
    for position in range(max((len(tail) for tail in tails), default=0)):
        for tail in tails:
            if position < len(tail) and tail[position] not in seen:
                seen.add(tail[position])
                order.append(tail[position])
    return order


class RunClaims:
    """The controller's view of the run's claims: freed after a crash, dropped at the end.

    Opens the store only when needed (a crash, the end of the run).
    """

    def __init__(self, store: StoreSettings, run: str) -> None:
        self.store = store
        self.run = run

    def _backend(self) -> ClaimingBackend:
        from .backends import ClaimingBackend, open_backend

        backend = open_backend(self.store.url, self.store.namespace)
        assert isinstance(backend, ClaimingBackend)
        return backend

    def unclaim(self, items: Sequence[int], worker: str) -> None:
        """A crashed ``worker``'s claims of ``items``, which run again elsewhere."""
        if not items:
            return
        backend = self._backend()
        try:
            backend.unclaim(self.run, items, worker)
        finally:
            backend.close()

    def forget(self) -> None:
        """The run has ended: its claims go (a user's store outlives the run)."""
        with contextlib.suppress(BackendError):
            backend = self._backend()
            try:
                backend.forget_run(self.run)
            finally:
                backend.close()
