"""What every scenario shares: generated suites, pytest in a subprocess, markdown tables.

Each run is one fresh ``python -m pytest`` process with this interpreter, reaped with
``os.wait4`` so that its CPU time and peak RSS are its own and not the sum of earlier runs.
Pooled figures come from a ``pytest_dynpool_run_finished`` hook in the generated
conftest, written as JSON: no parsing of the terminal summary.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

ENV_TO_DROP = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTHONDONTWRITEBYTECODE",
)
"""Environment that would change what the subprocess pytest runs, or how fast it starts.

Bytecode caching stays on, in one cache for the whole benchmark session (via
``PYTHONPYCACHEPREFIX``, so nothing is written next to any source): pytest's own modules
are compiled once by :func:`prime`, and each generated suite is compiled and
assertion-rewritten once by an untimed warm-up, not by whichever timed run comes first.
"""

RESULT_ENV = "DYNPOOL_BENCH_RESULT"

PYTEST_INI = """\
[pytest]
markers =
    dynpool: registered here too, so that -p no:dynpool runs warn about nothing
    xdist_group: registered here too, for runs without pytest-xdist
"""

RESULT_CONFTEST = f'''\
import importlib.util
import json
import os

import pytest


@pytest.hookimpl(optionalhook=True)  # optional: -p no:dynpool runs lack the hookspec
def pytest_dynpool_run_finished(config, stats):
    path = os.environ.get("{RESULT_ENV}")
    if not path or hasattr(config, "workerinput"):
        return  # an xdist worker's figures are its own share: the caller reads the terminal
    jobs = [
        {{
            "name": job.job.name,
            "cap": job.job.cap,
            "items": job.items,
            "peak": job.peak_in_flight,
            "work": sum(job.durations),
            "longest": max(job.durations, default=0.0),
        }}
        for job in stats.jobs
    ]
    figures = {{
        "workers": stats.workers,
        "wall": stats.pool_wall_seconds,
        "lower_bound": stats.lower_bound(),
        # compare_trees also runs checkouts from before RunStats.bound() existed.
        "bounded_by": stats.bound().reason if hasattr(stats, "bound") else "",
        "peak": stats.pool_peak_in_flight,
        "jobs": jobs,
    }}
    with open(path + ".part", "w", encoding="utf-8") as out:
        json.dump(figures, out)
    os.replace(path + ".part", path)  # whole or not at all, for whoever reads it
'''
"""The machine-readable channel: the plugin's own figures of the pooled phase."""

PASSED_RE = re.compile(r"\b(\d+) passed\b")
BAD_OUTCOME_RE = re.compile(r"\b\d+ (failed|errors?|skipped|xfailed|xpassed|deselected)\b")
NO_TESTS_COLLECTED = 5

PYTEST_ARGS = ("-m", "pytest", "-q")
"""How every run invokes pytest, after the interpreter (``sys.executable`` unless told)."""
NO_CACHE = ("-p", "no:cacheprovider")
PLAIN = ("-p", "no:dynpool")


@dataclass(frozen=True)
class Settings:
    """What the command line chose for every scenario."""

    smoke: bool
    rounds: int


@dataclass(frozen=True)
class JobFigures:
    name: str
    cap: int
    items: int
    peak: int
    work: float
    longest: float


@dataclass(frozen=True)
class PoolFigures:
    """The pooled phase as the plugin measured it."""

    workers: int
    wall: float
    lower_bound: float
    peak: int
    jobs: tuple[JobFigures, ...]
    bounded_by: str = ""

    @property
    def ratio(self) -> float:
        return self.wall / self.lower_bound if self.lower_bound > 0 else float("nan")


@dataclass(frozen=True)
class RunResult:
    """One pytest process: wall time, CPU time, peak RSS, output, and pool figures."""

    wall: float
    cpu: float
    max_rss_mib: float
    output: str
    pool: PoolFigures | None


class Workspace:
    """A temporary directory of generated suites; ``pycache`` is the session's bytecode cache."""

    def __init__(self, prefix: str, settings: Settings, pycache: Path) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.root = Path(self._tmp.name)
        self.settings = settings
        self.env = dict(os.environ)
        for name in ENV_TO_DROP:
            self.env.pop(name, None)
        self.env["PYTHONPYCACHEPREFIX"] = str(pycache)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._tmp.cleanup()

    def new_suite(self, name: str, conftest: str = RESULT_CONFTEST) -> Path:
        """An empty suite directory with its own pytest.ini, so no enclosing config applies."""
        suite = self.root / name
        suite.mkdir()
        (suite / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
        (suite / "conftest.py").write_text(conftest, encoding="utf-8")
        return suite

    def run(
        self,
        suite: Path,
        args: Sequence[str],
        *,
        passed: int,
        extra_env: Mapping[str, str] | None = None,
        cache: bool = False,
        python: str = sys.executable,
    ) -> RunResult:
        """Run pytest on ``suite``; exit loudly unless exactly ``passed`` tests passed.

        Without ``cache`` pytest's cache plugin is off, so that no run learns from another.
        ``python`` is another venv's interpreter when comparing two checkouts.
        """
        result_file = suite / "dynpool-result.json"
        result_file.unlink(missing_ok=True)
        env = {**self.env, RESULT_ENV: str(result_file), **(extra_env or {})}
        command = [
            python,
            *PYTEST_ARGS,
            *(() if cache else NO_CACHE),
            *args,
            "--rootdir",
            str(suite),
            str(suite),
        ]
        wall, cpu, rss, code, output = _run_measured(command, suite, env)
        counts = PASSED_RE.findall(output)
        if code != 0 or counts[-1:] != [str(passed)] or BAD_OUTCOME_RE.search(output):
            fail(f"expected exit code 0 and '{passed} passed', got {code}", command, output)
        pool = _read_pool(result_file) if result_file.exists() else None
        return RunResult(wall=wall, cpu=cpu, max_rss_mib=rss, output=output, pool=pool)

    def warm_up(self, suite: Path, python: str = sys.executable) -> None:
        """Import (so byte-compile and assertion-rewrite) every module of the suite, untimed.

        No function matches ``python_functions`` here, so nothing is collected: exit code 5.
        """
        if self.settings.smoke:
            return  # smoke figures mean nothing; save the seconds
        no_tests = ("-o", "python_functions=_no_such_test", "-o", "python_classes=_NoSuchTest")
        command = [python, *PYTEST_ARGS, *NO_CACHE, *PLAIN, *no_tests, "--rootdir", str(suite)]
        command.append(str(suite))
        _, _, _, code, output = _run_measured(command, suite, self.env)
        if code != NO_TESTS_COLLECTED:
            fail(f"warm-up: expected exit code 5 (nothing collected), got {code}", command, output)


def prime(settings: Settings, pycache: Path, python: str = sys.executable) -> None:
    """Compile pytest, the plugin and xdist into the session's cache: plain, pooled, -n 2."""
    if settings.smoke:
        return
    with Workspace("dynpool-bench-prime-", settings, pycache) as workspace:
        suite = workspace.new_suite("prime")
        source = "import pytest\n\n\n@pytest.mark.dynpool(2)\ndef test_one():\n    pass\n"
        (suite / "test_prime.py").write_text(source, encoding="utf-8")
        workspace.run(suite, PLAIN, passed=1, python=python)
        workspace.run(suite, ("--dynpool-workers", "2"), passed=1, python=python)
        if python == sys.executable and importlib.util.find_spec("xdist") is not None:
            workspace.run(suite, ("-n", "2"), passed=1, python=python)


def _run_measured(
    command: Sequence[str], cwd: Path, env: Mapping[str, str]
) -> tuple[float, float, float, int, str]:
    """Wall, CPU (user + system), peak RSS in MiB, exit code and output of one process."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        # wait4, not wait: the rusage of this child alone (getrusage(RUSAGE_CHILDREN) sums all).
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return wall, usage.ru_utime + usage.ru_stime, rss, process.returncode, output


def _read_pool(path: Path) -> PoolFigures:
    data = json.loads(path.read_text(encoding="utf-8"))
    jobs = tuple(JobFigures(**job) for job in data.pop("jobs"))
    return PoolFigures(jobs=jobs, **data)


def fail(message: str, command: Sequence[str], output: str) -> NoReturn:
    tail = "\n".join(output.splitlines()[-30:])
    sys.exit(f"benchmarks: {message}\ncommand: {' '.join(command)}\n--- output tail ---\n{tail}")


def progress(message: str) -> None:
    """Progress goes to stderr, so that stdout is only the markdown."""
    print(message, file=sys.stderr, flush=True)


def split_counts(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal non-negative counts."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default r)."""
    marks = [":---" if (align[i : i + 1] or "r") == "l" else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"
