"""Items claimed in the run's store, so that xdist workers balance one run between them.

Every xdist worker collects the same items, so any of them can run any pooled
item. The controller's partition is each worker's *preference*: a worker runs
its own share first, and once nothing of its own can start it takes (steals)
another worker's unstarted item. An item is claimed in the transaction that
takes its job's slot (``ClaimingBackend.claim_and_acquire``): a claim costs no
extra round trip, it means the item started, and an item claimed elsewhere is
dropped here. Stealing takes the other shares from their far end, interleaved,
so that owner and thief meet late.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from . import BackendError, ClaimingBackend, Taken
from .gate import StoreGate
from .waiting import poll_delays


class StoreClaims:
    """The runtime's ``ItemClaims`` through a ``StoreGate`` whose backend claims items.

    ``collection_index[i]``: the collection index of pool item ``i`` (the claim's key,
    the same in every worker). ``candidates``: (pool item, job, cap) of the other
    workers' shares, in the order to steal them.
    """

    def __init__(
        self,
        gate: StoreGate,
        backend: ClaimingBackend,
        run: str,
        claimer: str,
        collection_index: Sequence[int],
        candidates: Sequence[tuple[int, str, int]],
    ) -> None:
        self._gate = gate
        self._backend = backend
        self._run = run
        self._claimer = claimer
        self._key = list(collection_index)
        self._pool_item = {key: item for item, key in enumerate(self._key)}
        self._candidates = [(self._key[item], job, cap) for item, job, cap in candidates]
        self._held_back = frozenset(item for item, _, _ in candidates)
        self._exhausted = not self._candidates
        self._delays: Iterator[float] = poll_delays()
        # Pool items stolen from other shares, and own items another worker took.
        self.stolen: list[int] = []
        self.dropped: list[int] = []

    @property
    def held_back(self) -> frozenset[int]:
        return self._held_back

    def try_claim(self, item: int, job: str, cap: int) -> float | Taken | None:
        key = self._key[item]
        answer = self._gate.try_acquire_with(
            job, lambda: self._backend.claim_and_acquire(self._run, key, self._claimer, job, cap)
        )
        if isinstance(answer, Taken):
            self.dropped.append(item)
        return answer

    def steal(self) -> int | None:
        if self._exhausted or self._gate.failure is not None:
            return None
        try:
            found = self._backend.steal(self._run, self._claimer, self._candidates)
        except BackendError as error:
            self._gate.fail(str(error))
            self._exhausted = True
            return None
        gone = {*found.claimed, found.item}
        self._candidates = [c for c in self._candidates if c[0] not in gone]
        if found.item is None or found.lease is None:
            self._exhausted = not found.left
            return None
        self._gate.adopt(found.lease)
        self._delays = poll_delays()
        item = self._pool_item[found.item]
        self.stolen.append(item)
        return item

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def retry_in(self) -> float:
        return next(self._delays)
