"""Which part of a pytest-xdist run this process plays: none, the controller, or a worker.

Reads only what xdist documents (``config.workerinput`` on a worker, its ``-n`` and
``--tx`` options), so the entry point may import it; xdist's undocumented internals
stay in ``pytest_compat``.
"""

from __future__ import annotations

from typing import Any, Protocol

import pytest

from .jobs import Plan
from .options import Settings

# In workerinput when the controller runs dynpool: the side channel's directory.
WORKERINPUT_KEY = "dynpool_channel"
# In workerinput too: [url, namespace] of the limits store every worker uses.
STORE_INPUT_KEY = "dynpool_store"


def worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """On an xdist worker, what its controller sent (``workerinput``); else None."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return workerinput


def distributes(config: pytest.Config) -> bool:
    """True in the controller of a distributed run (``-n N`` with N >= 1, or ``--tx``)."""
    if worker_input(config) is not None:
        return False
    option = config.option
    return bool(getattr(option, "numprocesses", None)) or bool(getattr(option, "tx", None))


class WorkerSide(Protocol):
    """What the entry point asks of a worker's part (``xdist_worker.XdistWorker``)."""

    def plan_ready(self, session: pytest.Session, plan: Plan) -> None: ...

    def usage_error(self, error: pytest.UsageError) -> None: ...

    def receive_plan(self, session: pytest.Session, plan: Plan, settings: Settings) -> Plan: ...


WORKER_SIDE_KEY = pytest.StashKey[WorkerSide]()
