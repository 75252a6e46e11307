"""The process's side of ``sys.stdout``/``sys.stderr`` while the pool runs.

Shared by the per-item stream routing (``capture``) and the per-item capture
manager (``phase_capture``): one ``PoolStreams`` entry in ``POOL`` while the pool
runs, none otherwise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

STDOUT, STDERR, STDIN = 0, 1, 2
CLOSED_FILE = "I/O operation on closed file."


class OrphanOutput:
    """Output of threads that belong to no running pooled test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


@dataclass
class PoolStreams:
    """The process's side of the streams while the pool runs."""

    values: list[Any]  # sys.stdout/stderr for code outside any item (the main thread)
    real: list[Any]  # the streams when the pool started: the terminal
    session: list[Any]  # pytest's session capture streams, or None when not capturing
    orphans: OrphanOutput | None


POOL: list[PoolStreams] = []  # one entry while the pool runs


def pool_streams() -> PoolStreams:
    """The running pool's entry (call it only while the pool runs)."""
    return POOL[-1]
