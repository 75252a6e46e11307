"""Code the cross-process backend tests run in child processes (importable, for ``spawn``)."""

from __future__ import annotations

from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier, Lock

from pytest_dynpool.backends import open_backend

# Bounds every wait of a child: a broken cap fails the test instead of hanging it.
WAIT_SECONDS = 30.0


def hold_rounds(
    url: str,
    namespace: str,
    job: str,
    cap: int,
    rounds: int,
    holders: Barrier,
    counter_lock: Lock,
    in_flight: Synchronized[int],
    peak: Synchronized[int],
) -> None:
    """``rounds`` times: take a slot, count it, give it back; meet at the first.

    In its first round each process meets the other holders at the barrier (of
    ``cap`` parties; the number of processes is a multiple of ``cap``): that
    proves ``cap`` slots were held together. The shared counter proves no more
    ever were. Later rounds only count, so no process waits on one that is done.
    """
    backend = open_backend(url, namespace)
    try:
        for round_number in range(rounds):
            lease = backend.acquire(job, cap)
            while lease is None:
                backend.wait_for_release([job], WAIT_SECONDS)
                lease = backend.acquire(job, cap)
            with counter_lock:
                in_flight.value += 1
                peak.value = max(peak.value, in_flight.value)
            if round_number == 0:
                holders.wait(WAIT_SECONDS)
            with counter_lock:
                in_flight.value -= 1
            backend.release(lease)
    finally:
        backend.close()


def take_tokens(
    url: str, namespace: str, job: str, per_second: float, burst: int, count: int
) -> list[float]:
    """Take ``count`` rate tokens, sleeping as told; the wall-clock time of each."""
    import time

    backend = open_backend(url, namespace)
    taken: list[float] = []
    try:
        while len(taken) < count:
            wait = backend.take_token(job, per_second, burst).wait
            if wait:
                time.sleep(wait)
                continue
            taken.append(time.time())
    finally:
        backend.close()
    return taken


def open_together(url: str, namespace: str, start: Barrier) -> None:
    """Open the store at the same moment as the other processes, take and give a slot."""
    start.wait(WAIT_SECONDS)
    backend = open_backend(url, namespace)
    try:
        lease = backend.acquire("api", 100)
        assert lease is not None
        backend.release(lease)
    finally:
        backend.close()
