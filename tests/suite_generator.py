"""Hypothesis strategies that write whole pytest suites, and the checks run on their event logs.

A generated suite has a random tree (packages with ``__init__.py``, nested ones,
modules, classes, functions, parametrization), a random DAG of fixtures of every
scope (yield or return with ``addfinalizer``, parametrized, autouse, some failing
in setup or teardown), xunit setup/teardown functions, skips, xfails and random
``dynpool`` markers. Every fixture setup, use and teardown, and every item's
start and end, is appended to an event log (one ``write`` per line under a
lock, in order), so that a run can be checked after it ended:

- fixture instances: how often each was set up and torn down, and that none was
  used while not set up (``assert_lifetimes``);
- caps: the items of one job in flight at once, the pool's size, and that an
  exclusive item overlapped nothing (``assert_caps_held``).

The job each test belongs to is worked out here, independently of the plugin,
and written on the test as ``@pytest.mark.expect_job(key)``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import strategies as st

from .conftest import outcomes_by_nodeid

SCOPES = ("session", "package", "module", "class", "function")
JOBS = {"alpha": 1, "beta": 2, "gamma": 3}
OUTCOMES = ("pass", "pass", "pass", "redirect", "fail", "skip", "skipmark", "xfail", "xpass")

INI = """
[pytest]
markers =
    dynpool: registered so that -p no:dynpool runs without warnings
    expect_job(key): the job the generator expects the test to belong to
"""

RECORDER = """
import json
import os
import threading

import pytest

_lock = threading.Lock()
EVENTS = os.path.join(os.getcwd(), "events.jsonl")


def record(kind, tag):
    line = (json.dumps([kind, tag]) + "\\n").encode()
    with _lock:  # O_APPEND and one write per event: the order in the file is the real order
        fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def use(*tags):
    for tag in tags:
        record("use", tag)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    mark = item.get_closest_marker("expect_job")
    if mark:
        key = mark.args[0]
    else:  # a doctest: its module says which job it expects
        key = getattr(item, "dtest", None) and item.dtest.globs.get("EXPECT_DOCTEST_JOB")
    tag = f"{key or 'exclusive'}|{item.nodeid}"
    record("enter", tag)
    try:
        return (yield)
    finally:
        record("exit", tag)
"""


REDIRECT_BODY = """\
    with contextlib.redirect_stdout(io.StringIO()) as buffer:
        print("redirected")
    assert buffer.getvalue() == "redirected\\n", buffer.getvalue()
    print("after the redirect")"""

DOCTEST = """\
EXPECT_DOCTEST_JOB = {key!r}


def documented():
    '''
    >>> print("doctest of {path}")
    doctest of {path}
    >>> for n in range(3): print(n)
    0
    1
    2
    '''"""


@dataclass(frozen=True)
class FixtureSpec:
    name: str
    scope: str
    style: str  # "yield" or "return" (with request.addfinalizer)
    params: int
    autouse: bool
    deps: tuple[str, ...]
    fails: str | None  # None, "setup" or "teardown"

    def source(self) -> str:
        decorator_args = [f'scope="{self.scope}"']
        if self.params:
            decorator_args.append(f"params={list(range(self.params))}")
        if self.autouse:
            decorator_args.append("autouse=True")
        args = ", ".join(["request", *self.deps])
        param = "{request.param}" if self.params else ""
        deps = ",".join("{" + dep + "}" for dep in self.deps)
        use_deps = f"    use({', '.join(self.deps)})\n" if self.deps else ""
        lines = [
            f"@pytest.fixture({', '.join(decorator_args)})",
            f"def {self.name}({args}):",
            f'    tag = f"{self.name}[{param}]@{{request.node.nodeid}}<{deps}>"',
            use_deps.rstrip("\n"),
        ]
        if self.fails == "setup":
            lines += [
                '    record("setup_error", tag)',
                '    raise RuntimeError(f"setup of {tag} failed")',
            ]
            return "\n".join(line for line in lines if line) + "\n"
        lines.append('    record("setup", tag)')
        teardown = [use_deps.rstrip("\n"), '    record("teardown", tag)']
        if self.fails == "teardown":
            teardown.append('    raise RuntimeError(f"teardown of {tag} failed")')
        teardown = [line for line in teardown if line]
        if self.style == "yield":
            lines += ["    yield tag", *teardown]
        else:
            lines += ["    def finish():", *("    " + line for line in teardown)]
            lines += ["    request.addfinalizer(finish)", "    return tag"]
        return "\n".join(line for line in lines if line) + "\n"


@dataclass(frozen=True)
class TestSpec:
    fixtures: tuple[str, ...]
    params: int
    marker: str | None
    outcome: str

    def source(
        self, name: str, in_class: bool, job_key: str, fixtures: dict[str, FixtureSpec]
    ) -> str:
        args = ["self"] if in_class else []
        args += (["n"] if self.params else []) + list(self.fixtures)
        lines = [f'@pytest.mark.expect_job("{job_key}")']
        if self.marker:
            lines.append(f"@pytest.mark.{self.marker}")
        if self.params:
            lines.append(f'@pytest.mark.parametrize("n", range({self.params}))')
        if self.outcome == "skipmark":
            lines.append('@pytest.mark.skip(reason="marked")')
        elif self.outcome in ("xfail", "xpass"):
            lines.append('@pytest.mark.xfail(reason="expected")')
        lines.append(f"def {name}({', '.join(args)}):")
        usable = [f for f in self.fixtures if fixtures[f].fails != "setup"]
        lines.append(f"    use({', '.join(usable)})")
        lines.append(f'    print("output of {name}")')
        lines.append(
            {
                "pass": "    pass",
                # Another test's print must not land in the buffer, nor this one's elsewhere.
                "redirect": REDIRECT_BODY,
                "xpass": "    pass",
                "skipmark": "    pass",
                "fail": "    assert False",
                "xfail": "    assert False",
                "skip": '    pytest.skip("no")',
            }[self.outcome]
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class ClassSpec:
    marker: str | None
    tests: tuple[TestSpec, ...]
    xunit: bool
    xunit_fails: bool  # setup_module / setup_class raises


@dataclass(frozen=True)
class ModuleSpec:
    directory: str
    marker: str | None
    functions: tuple[TestSpec, ...]
    classes: tuple[ClassSpec, ...]
    xunit: bool
    xunit_fails: bool  # setup_module / setup_class raises
    doctest: bool = False  # a function with a doctest that prints (run with --doctest-modules)


@dataclass
class Suite:
    """One generated suite, plus the command-line switches it runs with."""

    fixtures: tuple[FixtureSpec, ...]
    modules: tuple[ModuleSpec, ...]
    workers: int
    exitfirst: bool
    unmarked_in_pool: bool
    cap_overrides: dict[str, int]
    caps: dict[str, int] = field(default_factory=dict)

    def shared_args(self) -> list[str]:
        """Switches for both runs, plain and pooled."""
        return ["--doctest-modules"] if any(module.doctest for module in self.modules) else []

    def args(self) -> list[str]:
        args = ["--dynpool-workers", str(self.workers)]
        if self.unmarked_in_pool:
            args.append("--dynpool-unmarked=pool")
        for job, cap in sorted(self.cap_overrides.items()):
            args += ["--dynpool-cap", f"{job}={cap}"]
        return args

    @property
    def reorders(self) -> bool:
        """A parametrized fixture wider than a function makes pytest reorder items by
        parameter, so that it sets up one module, class or package instance several
        times (it tears it down whenever the next item is elsewhere); the pool sets up
        each instance once."""
        return any(f.params and f.scope != "function" for f in self.fixtures)

    def write(self, root: Path) -> None:
        for stale in list(root.glob("test_*.py")) + list(root.glob("p_*")):
            if stale.is_dir():
                for path in sorted(stale.rglob("*"), reverse=True):
                    path.rmdir() if path.is_dir() else path.unlink()
                stale.rmdir()
            else:
                stale.unlink()
        (root / "pytest.ini").write_text(INI)
        fixtures = "\n\n".join(f.source() for f in self.fixtures)
        (root / "conftest.py").write_text(RECORDER + "\n\n" + fixtures)
        by_name = {f.name: f for f in self.fixtures}
        for index, module in enumerate(self.modules):
            parts = module.directory.split("/") if module.directory else []
            for depth in range(1, len(parts) + 1):
                package = root.joinpath(*parts[:depth])
                package.mkdir(exist_ok=True)
                (package / "__init__.py").touch()
            module_path = "/".join([*parts, f"test_m{index}.py"])
            (root / module_path).write_text(self._module_source(module_path, module, by_name))

    def _job_key(self, marker: str | None, declared_at: str) -> str:
        if marker is None:
            if self.unmarked_in_pool:
                self.caps["unmarked"] = self.workers
                return "unmarked"
            return "exclusive"
        named = re.search(r'job="(\w+)"', marker)
        if named:
            name = named.group(1)
            self.caps[f"job:{name}"] = self.cap_overrides.get(name, JOBS[name])
            return f"job:{name}"
        cap = re.search(r"(\d+)", marker)
        assert cap is not None
        self.caps[declared_at] = int(cap.group(1))
        return declared_at

    def _module_source(
        self, path: str, module: ModuleSpec, fixtures: dict[str, FixtureSpec]
    ) -> str:
        parts = ["import contextlib\nimport io\nimport pytest", "from conftest import record, use"]
        if module.marker:
            parts.append(f"pytestmark = pytest.mark.{module.marker}")
        if module.doctest:
            parts.append(DOCTEST.format(key=self._job_key(module.marker, path), path=path))
        if module.xunit:
            parts.append(
                _xunit(
                    "setup_module(module)",
                    "teardown_module(module)",
                    "xmod@{module.__name__}",
                    module.xunit_fails,
                )
                + "\n\n"
                + _xunit(
                    "setup_function(function)",
                    "teardown_function(function)",
                    "xfunc@{function.__name__}",
                    False,
                )
            )
        for i, spec in enumerate(module.functions):
            declared = f"{path}::test_f{i}" if spec.marker else path
            key = self._job_key(spec.marker or module.marker, declared)
            parts.append(spec.source(f"test_f{i}", False, key, fixtures))
        for c, cls in enumerate(module.classes):
            body = []
            if cls.xunit:
                body.append(
                    "@classmethod\n"
                    + _xunit(
                        "setup_class(cls)",
                        "teardown_class(cls)",
                        "xcls@{cls.__name__}",
                        cls.xunit_fails,
                    ).replace("\n\ndef", "\n\n@classmethod\ndef")
                    + "\n\n"
                    + _xunit(
                        "setup_method(self, method)",
                        "teardown_method(self, method)",
                        "xmeth@{method.__name__}",
                        False,
                    )
                )
            for i, spec in enumerate(cls.tests):
                marker: str | None
                if spec.marker:
                    marker, declared = spec.marker, f"{path}::TestC{c}::test_m{i}"
                elif cls.marker:
                    marker, declared = cls.marker, f"{path}::TestC{c}"
                else:
                    marker, declared = module.marker, path
                key = self._job_key(marker, declared)
                body.append(spec.source(f"test_m{i}", True, key, fixtures))
            header = f"@pytest.mark.{cls.marker}\n" if cls.marker else ""
            indented = "\n\n".join(body).replace("\n", "\n    ")
            parts.append(f"{header}class TestC{c}:\n    {indented}")
        return "\n\n\n".join(parts) + "\n"


def _xunit(setup: str, teardown: str, tag: str, setup_fails: bool) -> str:
    if setup_fails:
        setup_body = (
            f'    record("setup_error", f"{tag}")\n    raise RuntimeError(f"setup of {tag} failed")'
        )
    else:
        setup_body = f'    record("setup", f"{tag}")'
    return f'def {setup}:\n{setup_body}\n\ndef {teardown}:\n    record("teardown", f"{tag}")'


markers = st.one_of(
    st.none(),
    st.integers(1, 4).map(lambda cap: f"dynpool({cap})"),
    st.integers(1, 3).map(lambda cap: f"dynpool(max_concurrency={cap})"),
    st.sampled_from(sorted(JOBS)).map(lambda job: f'dynpool({JOBS[job]}, job="{job}")'),
)


@st.composite
def fixture_dags(draw: st.DrawFn) -> tuple[FixtureSpec, ...]:
    """Fixtures that depend only on earlier fixtures of the same or a wider scope."""
    specs: list[FixtureSpec] = []
    for index in range(draw(st.integers(1, 6))):
        scope = draw(st.sampled_from(SCOPES))
        wider = [s.name for s in specs if SCOPES.index(s.scope) <= SCOPES.index(scope)]
        deps = draw(st.lists(st.sampled_from(wider), unique=True, max_size=2)) if wider else []
        params = draw(st.sampled_from((0, 0, 0, 2)))
        autouse = not params and draw(st.integers(0, 5)) == 0
        # A failing teardown wider than a function is reported on whichever item of
        # its scope finished last (test_fixtures.py covers it), so only function
        # fixtures fail in teardown here.
        failures = ("setup", "teardown") if scope == "function" else ("setup",)
        fails = draw(st.sampled_from((None,) * 8 + failures))
        specs.append(
            FixtureSpec(
                name=f"fx{index}_{scope[:3]}",
                scope=scope,
                style=draw(st.sampled_from(("yield", "return"))),
                params=params,
                autouse=autouse,
                deps=tuple(sorted(deps)),
                fails=fails,
            )
        )
    return tuple(specs)


def _tests(fixture_names: list[str], max_size: int) -> st.SearchStrategy[tuple[TestSpec, ...]]:
    spec = st.builds(
        TestSpec,
        fixtures=st.lists(st.sampled_from(fixture_names), unique=True, max_size=3).map(tuple),
        params=st.sampled_from((0, 0, 2, 3)),
        marker=markers,
        outcome=st.sampled_from(OUTCOMES),
    )
    return st.lists(spec, min_size=1, max_size=max_size).map(tuple)


@st.composite
def suites(draw: st.DrawFn) -> Suite:
    fixtures = draw(fixture_dags())
    names = [f.name for f in fixtures if not f.autouse]
    if not names:
        names = [f.name for f in fixtures]
    directories = draw(
        st.lists(st.sampled_from(("", "p_a", "p_a/p_sub", "p_b")), min_size=1, max_size=4)
    )
    xunit_flags = st.tuples(st.booleans(), st.integers(0, 9).map(lambda n: n == 0))
    modules = []
    for directory in directories:
        xunit, xunit_fails = draw(xunit_flags)
        classes = []
        for _ in range(draw(st.integers(0, 2))):
            class_xunit, class_fails = draw(xunit_flags)
            classes.append(
                ClassSpec(draw(markers), draw(_tests(names, 3)), class_xunit, class_fails)
            )
        modules.append(
            ModuleSpec(
                directory=directory,
                marker=draw(markers),
                functions=draw(_tests(names, 3)),
                classes=tuple(classes),
                xunit=xunit,
                xunit_fails=xunit and xunit_fails,
                doctest=draw(st.integers(0, 2)) == 0,
            )
        )
    overrides = draw(st.dictionaries(st.sampled_from(sorted(JOBS)), st.integers(1, 3), max_size=2))
    return Suite(
        fixtures=fixtures,
        modules=tuple(modules),
        workers=draw(st.sampled_from((1, 2, 3, 4, 6, 8))),
        exitfirst=draw(st.integers(0, 4)) == 0,
        unmarked_in_pool=draw(st.integers(0, 3)) == 0,
        cap_overrides=overrides,
    )


# --- running and checking -------------------------------------------------------------------

Phases = dict[str, list[tuple[str, str, bool]]]
_TEARDOWN_ERROR = re.compile(r"RuntimeError: teardown of (\S+) failed")


@dataclass
class Run:
    result: pytest.RunResult
    events: list[tuple[str, str]]

    @property
    def outcomes(self) -> dict[str, list[tuple[str, str]]]:
        return outcomes_by_nodeid(self.result)

    def phases(self) -> Phases:
        """Every (phase, outcome, xfail) that the run logged, per node id."""
        reports = self.result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
        by_nodeid: Phases = {}
        for report in reports:
            entry = (report.when, report.outcome, hasattr(report, "wasxfail"))
            by_nodeid.setdefault(report.nodeid, []).append(entry)
        return {nodeid: sorted(entries) for nodeid, entries in by_nodeid.items()}

    def teardown_errors(self) -> Counter[str]:
        """Which fixture instances' teardowns failed, however the reports group them."""
        reports = self.result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
        found: Counter[str] = Counter()
        for report in reports:
            if report.when == "teardown" and report.failed:
                found.update(set(_TEARDOWN_ERROR.findall(str(report.longrepr))))
        return found

    def captured_stdout(self) -> dict[str, str]:
        """Each item's captured stdout, all phases (its last report holds them all)."""
        reports = self.result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
        return {report.nodeid: report.capstdout for report in reports}

    def counts(self, kind: str) -> Counter[str]:
        return Counter(tag for event, tag in self.events if event == kind)


def run(pytester: pytest.Pytester, *args: str) -> Run:
    log = pytester.path / "events.jsonl"
    log.unlink(missing_ok=True)
    # A KeyboardInterrupt in a generated test ends that run, not ours.
    result = pytester.runpytest(*args, no_reraise_ctrlc=True)
    lines = log.read_text().splitlines() if log.exists() else []
    return Run(result, [(kind, tag) for kind, tag in map(json.loads, lines)])


def assert_lifetimes(events: list[tuple[str, str]]) -> None:
    """No instance used while not set up, none torn down more often than set up, none left."""
    live: Counter[str] = Counter()
    for position, (kind, tag) in enumerate(events):
        if kind == "setup":
            live[tag] += 1
        elif kind == "teardown":
            live[tag] -= 1
            assert live[tag] >= 0, f"event {position}: {tag} torn down more often than set up"
        elif kind == "use":
            assert live[tag] > 0, f"event {position}: {tag} used while not set up"
    assert not +live, f"set up but never torn down: {sorted(+live)}"


def assert_caps_held(events: list[tuple[str, str]], caps: dict[str, int], workers: int) -> None:
    """Per-job in-flight counts from the start/end events never pass the caps or the pool."""
    in_flight: Counter[str] = Counter()
    exclusive_running = False
    for position, (kind, tag) in enumerate(events):
        if kind not in ("enter", "exit"):
            continue
        key, nodeid = tag.split("|", 1)
        if kind == "exit":
            in_flight[key] -= 1
            exclusive_running = False
            continue
        assert not exclusive_running, f"event {position}: {nodeid} started beside an exclusive item"
        if key == "exclusive":
            assert not +in_flight, f"event {position}: exclusive {nodeid} beside {+in_flight}"
            exclusive_running = True
        in_flight[key] += 1
        total = sum(in_flight.values())
        assert total <= workers, f"event {position}: {total} in flight on {workers} workers"
        if key != "exclusive":
            assert in_flight[key] <= caps[key], f"event {position}: job {key} above its cap"
    assert not +in_flight, f"items never finished: {+in_flight}"


# --- idioms: session-fixture logger levels, a test that stops the run, stepwise -------------
# Kept apart from the fixture-DAG suites above: these idioms change what a run reports as a
# whole (its exit code, what later runs select), so they are compared on their own.

IDIOM_KINDS = ("reads_level", "sets_level", "passes", "fails")
STOPS = (None, None, "keyboard_interrupt", "exit")

IDIOM_HEADER = """
import logging
import pytest

pytestmark = pytest.mark.dynpool({cap})
APP = logging.getLogger("idiom.app")

@pytest.fixture(scope="session")
def app_debug():
    APP.setLevel(logging.DEBUG)
    yield
    APP.setLevel(logging.NOTSET)
"""

IDIOM_BODIES = {
    "reads_level": (
        "(app_debug, caplog):\n"
        '    APP.debug("seen")\n'
        "    assert APP.getEffectiveLevel() == logging.DEBUG\n"
        '    assert [r.getMessage() for r in caplog.records] == ["seen"]\n'
    ),
    "sets_level": (
        "(caplog):\n"
        '    caplog.set_level(logging.ERROR, logger="idiom.app")\n'
        '    APP.warning("below the level")\n'
        "    assert caplog.records == []\n"
    ),
    "passes": "():\n    pass\n",
    "fails": '():\n    assert False, "fails on purpose"\n',
    "keyboard_interrupt": "():\n    raise KeyboardInterrupt\n",
    "exit": '():\n    pytest.exit("stopped by a test", returncode=3)\n',
}


@dataclass(frozen=True)
class IdiomSuite:
    """One module of idiom tests; ``stop`` replaces the test at ``stop_at``."""

    kinds: tuple[str, ...]
    stop: str | None
    stop_at: int
    stepwise: bool
    cap: int
    workers: int

    def test_kinds(self) -> list[str]:
        kinds = list(self.kinds)
        if self.stop is not None:
            kinds[self.stop_at % len(kinds)] = self.stop
        return kinds

    def source(self) -> str:
        tests = [f"def test_i{i}{IDIOM_BODIES[kind]}" for i, kind in enumerate(self.test_kinds())]
        return "\n\n".join([IDIOM_HEADER.format(cap=self.cap), *tests])

    def stopping_nodeid(self) -> str | None:
        if self.stop is None:
            return None
        return f"test_idioms.py::test_i{self.stop_at % len(self.kinds)}"


@st.composite
def idiom_suites(draw: st.DrawFn) -> IdiomSuite:
    kinds = tuple(draw(st.lists(st.sampled_from(IDIOM_KINDS), min_size=2, max_size=10)))
    stop = draw(st.sampled_from(STOPS))
    return IdiomSuite(
        kinds=kinds,
        stop=stop,
        stop_at=draw(st.integers(0, 9)),
        stepwise=stop is None and draw(st.booleans()),
        cap=draw(st.integers(1, 4)),
        workers=draw(st.sampled_from((1, 2, 4))),
    )
