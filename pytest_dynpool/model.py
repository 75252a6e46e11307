"""The records every layer shares: what a marker declares, an item's job, a job, a rate.

Pure data: no pytest, no threads, so the scheduler, the runtime, the HTTP plugin
and a future limits backend can all depend on it. ``Job.from_assignment`` is the
one way the package builds a ``Job``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RATE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m)\s*$")
_SECONDS_PER_UNIT = {"s": 1.0, "m": 60.0}
RATE_HINT = 'give rate as a string "N/s" or "N/m" with a number N > 0, e.g. rate="10/s"'


@dataclass(frozen=True)
class Rate:
    """At most ``count`` events per ``period_seconds``."""

    count: float
    period_seconds: float
    text: str

    @property
    def per_second(self) -> float:
        return self.count / self.period_seconds

    def __str__(self) -> str:
        return self.text


def parse_rate(value: object) -> Rate:
    """``"10/s"``, ``"600/m"``, ``"0.5/s"``; anything else is a ValueError or TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"rate must be a string like '10/s', got {value!r}")
    match = _RATE_PATTERN.match(value)
    if match is None:
        raise ValueError(f"rate must look like '10/s' or '600/m', got {value!r}")
    count = float(match.group(1))
    if count <= 0:
        raise ValueError(f"rate must be > 0, got {value!r}")
    return Rate(count, _SECONDS_PER_UNIT[match.group(2)], value.strip().replace(" ", ""))


@dataclass(frozen=True)
class JobSpec:
    """What one marker declares."""

    max_concurrency: int
    job: str | None = None
    rate: Rate | None = None
    adaptive: bool = False
    timeout: float | None = None


@dataclass(frozen=True)
class JobAssignment:
    """An item's job: its name, declared cap and where that was declared.

    ``timeout`` is the item's own (from its closest marker): None defers to
    ``--dynpool-timeout``, 0 means none.
    """

    name: str
    max_concurrency: int
    declared_at: str
    rate: Rate | None = None
    adaptive: bool = False
    timeout: float | None = None


@dataclass(frozen=True)
class Job:
    """A group of items sharing one cap; ``cap`` includes command-line overrides."""

    name: str
    cap: int
    declared_cap: int
    declared_at: str
    rate: Rate | None = None
    declared_rate: Rate | None = None
    adaptive: bool = False

    @classmethod
    def from_assignment(
        cls,
        assignment: JobAssignment,
        *,
        cap_override: int | None = None,
        rate_override: Rate | None = None,
    ) -> Job:
        """The job an assignment declares, with ``--dynpool-cap``/``--dynpool-rate`` applied.

        The one place a ``Job`` is built, so the plan and the HTTP plugin (which
        builds a test's job itself when the pool is off) always agree.
        """
        return cls(
            assignment.name,
            assignment.max_concurrency if cap_override is None else cap_override,
            assignment.max_concurrency,
            assignment.declared_at,
            rate=assignment.rate if rate_override is None else rate_override,
            declared_rate=assignment.rate,
            adaptive=assignment.adaptive,
        )
