"""Command-line options and ini keys, validated into one frozen ``Settings``.

Every ``--dynpool-*`` flag has a matching ini key; the flag wins. Bad values are
usage errors that name the option and say what would be accepted.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

import pytest

from .jobs import MAX_CAP
from .model import RATE_HINT, Rate, parse_rate
from .order import Order

_Choice = TypeVar("_Choice", bound=Enum)

# Fixtures that change process-wide state (monkeypatch: attributes, the environment,
# the working directory; pytester/testdir: the working directory, sys.path, sys.modules)
# or that capture at the file-descriptor level, which threads share: a test using
# one runs alone, outside the pool. ini dynpool_exclusive_fixtures replaces the list.
EXCLUSIVE_FIXTURES = ("monkeypatch", "pytester", "testdir", "capfd", "capfdbinary")


class Unmarked(str, Enum):
    """Where tests without a dynpool marker run."""

    EXCLUSIVE = "exclusive"
    POOL = "pool"


def auto_workers() -> int:
    """Default pool size: threads mostly wait on I/O, so allow more than cores.

    Same rule as ``concurrent.futures.ThreadPoolExecutor``: cores + 4, at most 32.
    """
    return min(32, (os.cpu_count() or 1) + 4)


def parse_workers(value: str) -> int:
    """``auto`` or an integer >= 1 (argparse ``type=`` and ini share this)."""
    text = str(value).strip()
    if text == "auto":
        return auto_workers()
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--dynpool-workers / dynpool_workers: expected an integer >= 1 or 'auto', "
            f"got {value!r}"
        ) from None
    if workers < 1:
        raise argparse.ArgumentTypeError(
            f"--dynpool-workers / dynpool_workers: expected an integer >= 1 or 'auto', "
            f"got {workers}"
        )
    return workers


def parse_cap_override(value: str) -> tuple[str, int]:
    """``JOB=K``: the job name may itself contain ``=``; K is after the last one."""
    name, sep, cap_text = str(value).strip().rpartition("=")
    try:
        cap = int(cap_text)
    except ValueError:
        cap = 0
    if not sep or not name or not 1 <= cap <= MAX_CAP:
        raise argparse.ArgumentTypeError(
            f"--dynpool-cap / dynpool_caps: expected JOB=K with an integer K >= 1, "
            f"got {value!r} (e.g. --dynpool-cap 'tests/test_api.py::TestLegacy=1')"
        )
    return name, cap


def parse_rate_override(value: str) -> tuple[str, Rate]:
    """``JOB=RATE``, e.g. ``search=10/s``: the rate is after the last ``=``."""
    name, sep, rate_text = str(value).strip().rpartition("=")
    try:
        rate = parse_rate(rate_text)
    except (TypeError, ValueError):
        rate = None
    if not sep or not name or rate is None:
        raise argparse.ArgumentTypeError(
            f"--dynpool-rate / dynpool_rates: expected JOB=RATE, {RATE_HINT}; got {value!r} "
            "(e.g. --dynpool-rate 'search=10/s')"
        )
    return name, rate


def parse_timeout(value: str) -> float:
    """Seconds (a number > 0), or 0 / ``none`` / ``off`` for no timeout (returned as 0)."""
    text = str(value).strip().lower()
    if text in ("", "none", "off"):
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(
            f"--dynpool-timeout / dynpool_timeout: expected a number of seconds >= 0 "
            f"(0 or 'none' for no timeout), got {value!r} (e.g. --dynpool-timeout 30)"
        )
    return seconds


def option_group(parser: pytest.Parser) -> pytest.OptionGroup:
    """The ``dynpool`` group of ``pytest --help``, shared with the HTTP plugin's options."""
    return parser.getgroup("dynpool", "run marked tests on a shared, capped thread pool")


def add_options(parser: pytest.Parser) -> None:
    """Register the ``--dynpool-*`` flags and their ini keys."""
    group = option_group(parser)
    group.addoption(
        "--dynpool-workers",
        dest="dynpool_workers",
        type=parse_workers,
        default=None,
        metavar="N",
        help="Worker threads shared by all jobs: an integer >= 1 or 'auto' "
        "(cores + 4, at most 32; the default). ini: dynpool_workers.",
    )
    group.addoption(
        "--dynpool-cap",
        dest="dynpool_caps",
        type=parse_cap_override,
        action="append",
        default=None,
        metavar="JOB=K",
        help="Override a job's max_concurrency without touching code (repeatable). "
        "ini: dynpool_caps, one JOB=K per line.",
    )
    group.addoption(
        "--dynpool-rate",
        dest="dynpool_rates",
        type=parse_rate_override,
        action="append",
        default=None,
        metavar="JOB=RATE",
        help="Override (or set) a job's rate of test starts and requests, e.g. "
        "'search=10/s' or 'legacy=30/m' (repeatable). ini: dynpool_rates, one per line.",
    )
    group.addoption(
        "--dynpool-unmarked",
        dest="dynpool_unmarked",
        choices=[choice.value for choice in Unmarked],
        default=None,
        help="Unmarked tests run 'exclusive' (alone, one at a time; the default) "
        "or in the 'pool' under one job capped at the pool size. ini: dynpool_unmarked.",
    )
    group.addoption(
        "--dynpool-timeout",
        dest="dynpool_timeout",
        type=parse_timeout,
        default=None,
        metavar="SECONDS",
        help="Fail a pooled item still running after SECONDS and move on without it "
        "(its thread cannot be killed and is left behind); 0 or 'none': no timeout "
        "(the default). A marker's timeout= wins. ini: dynpool_timeout.",
    )
    group.addoption(
        "--dynpool-xdist-groups",
        dest="dynpool_xdist_groups",
        action="store_true",
        default=None,
        help="Make each @pytest.mark.xdist_group(name) a dynpool job of cap 1 named "
        "'xdist_group=NAME' (a dynpool marker on the test wins). ini: dynpool_xdist_groups.",
    )
    group.addoption(
        "--dynpool-order",
        dest="dynpool_order",
        choices=[choice.value for choice in Order],
        default=None,
        help="Which job a free worker serves first: 'duration' (most remaining work per "
        "slot, longest tests first, from durations measured by earlier runs; the default), "
        "'count' (most remaining tests per cap) or 'collection' (collection order within "
        "the caps). ini: dynpool_order.",
    )
    parser.addini("dynpool_workers", "dynpool worker threads (integer or 'auto').", default="auto")
    parser.addini(
        "dynpool_xdist_groups",
        "make each xdist_group mark a dynpool job of cap 1 (true/false).",
        type="bool",
        default=False,
    )
    parser.addini(
        "dynpool_order",
        "dynpool dispatch order: duration, count or collection.",
        default=Order.DURATION.value,
    )
    parser.addini(
        "dynpool_caps", "dynpool cap overrides, one JOB=K per line.", type="linelist", default=[]
    )
    parser.addini("dynpool_timeout", "dynpool per-item timeout in seconds (0: none).", default="0")
    parser.addini(
        "dynpool_rates",
        "dynpool rate overrides, one JOB=RATE (N/s or N/m) per line.",
        type="linelist",
        default=[],
    )
    parser.addini(
        "dynpool_exclusive_fixtures",
        "tests using any of these fixtures run alone, outside the pool (names separated by "
        "spaces; replaces the default list: " + " ".join(EXCLUSIVE_FIXTURES) + ").",
        type="args",
        default=list(EXCLUSIVE_FIXTURES),
    )
    parser.addini(
        "dynpool_unmarked",
        "where unmarked tests run: exclusive or pool.",
        default=Unmarked.EXCLUSIVE.value,
    )


@dataclass(frozen=True)
class Settings:
    """The validated dynpool configuration of one run."""

    workers: int
    cap_overrides: dict[str, int]
    unmarked: Unmarked
    rate_overrides: dict[str, Rate] = field(default_factory=dict)
    timeout: float = 0.0  # seconds; 0: no timeout
    xdist_groups: bool = False
    order: Order = Order.DURATION
    exclusive_fixtures: frozenset[str] = frozenset(EXCLUSIVE_FIXTURES)


def _usage_error(error: argparse.ArgumentTypeError) -> pytest.UsageError:
    return pytest.UsageError(str(error))


def read_settings(config: pytest.Config) -> Settings:
    """Flags first, then ini keys; ini values get the same validation as flags."""
    try:
        workers = config.getoption("dynpool_workers")
        if workers is None:
            workers = parse_workers(str(config.getini("dynpool_workers")))
        overrides = dict(_ini_caps(config.getini("dynpool_caps")))
        overrides.update(config.getoption("dynpool_caps") or [])
        rates = dict(_ini_rates(config.getini("dynpool_rates")))
        rates.update(config.getoption("dynpool_rates") or [])
        timeout = config.getoption("dynpool_timeout")
        if timeout is None:
            timeout = parse_timeout(str(config.getini("dynpool_timeout")))
    except argparse.ArgumentTypeError as error:
        raise _usage_error(error) from None
    return Settings(
        workers=workers,
        cap_overrides=overrides,
        unmarked=_read_choice(config, "dynpool_unmarked", Unmarked),
        rate_overrides=rates,
        timeout=timeout,
        xdist_groups=bool(
            config.getoption("dynpool_xdist_groups") or config.getini("dynpool_xdist_groups")
        ),
        order=_read_choice(config, "dynpool_order", Order),
        exclusive_fixtures=frozenset(config.getini("dynpool_exclusive_fixtures")),
    )


def _read_choice(config: pytest.Config, name: str, choices: type[_Choice]) -> _Choice:
    """A flag with ``choices`` (argparse checked it), else its ini key, checked here."""
    text = config.getoption(name) or str(config.getini(name))
    try:
        return choices(text.strip())
    except ValueError:
        quoted = [repr(choice.value) for choice in choices]
        expected = " or ".join([", ".join(quoted[:-1]), quoted[-1]])
        raise pytest.UsageError(f"{name}: expected {expected}, got {text!r}") from None


# One JOB=VALUE of an ini line: spaces around "=" allowed, entries separated by
# commas or whitespace. A name may hold inner spaces, not "=" or ",".
_INI_ENTRY = re.compile(r"\s*([^\s,=](?:[^,=]*[^\s,=])?)\s*=\s*([^\s,=]+)\s*(?:,|(?=\s)|$)")


def ini_entries(line: str) -> list[str]:
    """The ``JOB=VALUE`` entries of one ini line, as ``--dynpool-cap``/``--dynpool-rate`` take them.

    ``j = 1``, ``j=2 k=3`` and ``j=10/s, k=5/s`` are read as users mean them. A
    line that is not such a list (``broken``, a name holding "=") is passed on
    whole, to be parsed as one entry or rejected with the option's usage error.
    """
    text = line.strip()
    entries: list[str] = []
    position = 0
    while position < len(text):
        match = _INI_ENTRY.match(text, position)
        if match is None:
            return [text]
        entries.append(f"{match[1]}={match[2]}")
        position = match.end()
    return entries


def _ini_caps(lines: Iterable[str]) -> Iterable[tuple[str, int]]:
    return (parse_cap_override(entry) for line in lines for entry in ini_entries(line))


def _ini_rates(lines: Iterable[str]) -> Iterable[tuple[str, Rate]]:
    return (parse_rate_override(entry) for line in lines for entry in ini_entries(line))


def add_flag_env_ini(
    parser: pytest.Parser, flag: str, dest: str, env: str, metavar: str, meaning: str
) -> None:
    """A string option set per run or per project: flag, ``$env`` and ini key ``dest``.

    Read it with ``flag_env_ini``.
    """
    option_group(parser).addoption(
        flag,
        dest=dest,
        default=None,
        metavar=metavar,
        help=f"{meaning} Wins over ${env}, which wins over the ini key {dest}.",
    )
    parser.addini(dest, f"dynpool: {meaning}", default="")


def flag_env_ini(config: pytest.Config, dest: str, env: str) -> str:
    """Flag (``dest``), then ``$env``, then the ini key named ``dest``; empty when none is set.

    The environment beats the ini file because it is set per run (CI) while
    the ini file is shared by every run.
    """
    from_option = config.getoption(dest, None)
    if from_option:
        return str(from_option)
    from_env = os.environ.get(env, "")
    if from_env:
        return from_env
    return str(config.getini(dest) or "")
