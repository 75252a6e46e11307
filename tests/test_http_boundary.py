"""The HTTP plugin and the pool core stand apart: imports, the pure model, the pool hook."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Sequence
from pathlib import Path

import pytest

import pytest_dynpool
from pytest_dynpool.http import plugin as http_plugin
from pytest_dynpool.http.traffic import TrafficRegistry
from pytest_dynpool.model import Job, JobAssignment

PACKAGE = Path(pytest_dynpool.__file__).parent
# Facades, not the core: the entry point registers the HTTP plugin (the one wiring
# point), the documented ``pytest_dynpool.fixtures`` shim is that plugin, and
# ``__init__`` re-exports its public names.
MAY_IMPORT_HTTP = {"plugin.py", "fixtures.py", "__init__.py"}


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the package modules ``path`` imports, lazily or not."""
    relative = path.relative_to(PACKAGE).with_suffix("")
    package = ["pytest_dynpool", *relative.parts[:-1]]  # also right for a package's __init__
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_outside_http_imports_the_http_plugin() -> None:
    offenders = []
    for path in _modules():
        name = path.relative_to(PACKAGE).as_posix()
        if name.startswith("http/") or name in MAY_IMPORT_HTTP:
            continue
        if any(m.startswith("pytest_dynpool.http") for m in _imported_modules(path)):
            offenders.append(name)
    assert offenders == []


def test_the_import_reader_sees_relative_imports() -> None:
    # The check above is only as good as this reader: it must see the entry point's import.
    assert "pytest_dynpool.http.plugin" in _imported_modules(PACKAGE / "plugin.py")
    assert "pytest_dynpool.model.Job" in _imported_modules(PACKAGE / "http" / "plugin.py")


@pytest.mark.parametrize("module", ["model.py", "limits.py", "scheduler.py"])
def test_pure_modules_import_no_pytest(module: str) -> None:
    imported = _imported_modules(PACKAGE / module)
    assert not {name for name in imported if name.split(".")[0] in {"pytest", "_pytest"}}


def test_the_core_summary_knows_no_http_state() -> None:
    source = (PACKAGE / "summary.py").read_text(encoding="utf-8")
    assert "JobState" not in source
    assert "JobTraffic" not in source


def test_public_names_still_import() -> None:
    from pytest_dynpool import HttpStats, JobSpec, JobState, JobTraffic, Rate  # noqa: F401

    fixtures = importlib.import_module("pytest_dynpool.fixtures")  # the documented shim
    from pytest_dynpool.jobs import Job as JobFromJobs
    from pytest_dynpool.limits import Rate as RateFromLimits

    assert JobState is JobTraffic
    assert fixtures is http_plugin
    assert fixtures.REGISTRY_KEY is fixtures.TRAFFIC_KEY
    assert (JobFromJobs, RateFromLimits) == (Job, Rate)


def test_one_way_to_build_a_job() -> None:
    assignment = JobAssignment("api", 3, "tests/test_api.py", adaptive=True)
    assert Job.from_assignment(assignment) == Job("api", 3, 3, "tests/test_api.py", adaptive=True)
    overridden = Job.from_assignment(assignment, cap_override=1)
    assert (overridden.cap, overridden.declared_cap) == (1, 3)


class FakePool:
    """A ``PoolControl`` that records what it is told."""

    def __init__(self, jobs: Sequence[Job]) -> None:
        self._jobs = list(jobs)
        self.caps: list[tuple[str, int]] = []

    @property
    def jobs(self) -> Sequence[Job]:
        return self._jobs

    def set_job_cap(self, job_name: str, cap: int) -> None:
        self.caps.append((job_name, cap))

    def resume_job(self, job_name: str) -> None:
        raise AssertionError("the HTTP plugin never resumes a job")


def test_the_pool_follows_an_adaptive_jobs_effective_cap(pytestconfig: pytest.Config) -> None:
    adaptive = Job("api", 4, 4, "here", adaptive=True)
    fixed = Job("legacy", 2, 2, "there")
    registry = TrafficRegistry()
    registry.state(adaptive).record(503, 0.0, 0)  # before the pool: 4 -> 2
    pool = FakePool([adaptive, fixed])
    stash_before = pytestconfig.stash.get(http_plugin.TRAFFIC_KEY, None)
    pytestconfig.stash[http_plugin.TRAFFIC_KEY] = registry
    try:
        http_plugin.pytest_dynpool_pool_started(config=pytestconfig, pool=pool)
    finally:
        if stash_before is None:
            del pytestconfig.stash[http_plugin.TRAFFIC_KEY]
        else:
            pytestconfig.stash[http_plugin.TRAFFIC_KEY] = stash_before
    assert pool.caps == [("api", 2)]  # the current cap at once; the fixed job is left alone
    traffic = registry.state(adaptive)
    traffic.record(429, 0.0, traffic.generation)
    assert pool.caps == [("api", 2), ("api", 1)]
    for _ in range(5):
        traffic.record(200, 0.0, traffic.generation)
    assert pool.caps[-1] == ("api", 2)
