"""Generated suites, run with the plugin off and on: same outcomes, same fixture lifetimes.

Hypothesis draws modules, classes, functions, parametrization, which fixtures
each test uses, which fixtures fail, and random dynpool markers and worker
counts. pytest itself is the oracle. CI runs the ``dynpool-ci`` profile (see
conftest.py); ``--hypothesis-profile=dynpool-long`` runs many more examples.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_fixtures import INI, RECORDER, assert_torn_down_after_last_use, run

FIXTURES = """
@pytest.fixture(scope="session")
def sess():
    record("setup", "sess")
    yield "sess"
    record("teardown", "sess")


@pytest.fixture(scope="module", params=[1, 2])
def mod_param(request, sess):
    tag = f"mod_param[{request.param}]@{request.node.nodeid}"
    record("setup", tag)
    yield tag
    record("teardown", tag)


@pytest.fixture(scope="module")
def mod(request):
    tag = f"mod@{request.node.nodeid}"
    record("setup", tag)
    yield tag
    record("teardown", tag)


@pytest.fixture(scope="class")
def klass(request, mod):
    tag = f"klass@{request.node.nodeid}"
    record("setup", tag)
    yield tag
    record("teardown", tag)


@pytest.fixture
def func(request, mod_param):
    tag = f"func@{request.node.nodeid}"
    record("setup", tag)
    request.addfinalizer(lambda: record("teardown", tag))
    return tag


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup failed")


@pytest.fixture
def broken_teardown(request):
    tag = f"broken_teardown@{request.node.nodeid}"
    record("setup", tag)
    yield tag
    record("teardown", tag)
    raise RuntimeError("teardown failed")
"""

USABLE = ("sess", "mod_param", "mod", "func", "broken_setup", "broken_teardown")
JOBS = {"alpha": 1, "beta": 2, "gamma": 3}


@dataclass(frozen=True)
class SpecOfTest:
    fixtures: tuple[str, ...]
    params: int
    marker: str | None
    outcome: str

    def source(self, name: str, in_class: bool) -> str:
        args = ["self"] if in_class else []
        args += ["n", *self.fixtures] if self.params else list(self.fixtures)
        lines = []
        if self.marker:
            lines.append(f"@pytest.mark.{self.marker}")
        if self.params:
            lines.append(f'@pytest.mark.parametrize("n", range({self.params}))')
        lines.append(f"def {name}({', '.join(args)}):")
        lines.append(f"    use({', '.join(f for f in self.fixtures if f != 'broken_setup')})")
        lines.append(
            {"pass": "    pass", "fail": "    assert False", "skip": '    pytest.skip("no")'}[
                self.outcome
            ]
        )
        return "\n".join(lines)


ModuleSpec = tuple[str | None, list[SpecOfTest], list[tuple[str | None, list[SpecOfTest]]]]

markers = st.one_of(
    st.none(),
    st.integers(1, 4).map(lambda cap: f"dynpool({cap})"),
    st.sampled_from(sorted(JOBS)).map(lambda job: f'dynpool({JOBS[job]}, job="{job}")'),
)
tests = st.builds(
    SpecOfTest,
    fixtures=st.lists(st.sampled_from(USABLE), unique=True, max_size=3).map(tuple),
    params=st.integers(0, 3),
    marker=markers,
    outcome=st.sampled_from(["pass", "pass", "pass", "fail", "skip"]),
)
modules = st.tuples(
    markers,  # module pytestmark
    st.lists(tests, min_size=1, max_size=4),
    st.lists(st.tuples(markers, st.lists(tests, min_size=1, max_size=3)), max_size=2),
)


def module_source(module: ModuleSpec) -> str:
    pytestmark, functions, classes = module
    parts = ["import pytest", "from conftest import use"]
    if pytestmark:
        parts.append(f"pytestmark = pytest.mark.{pytestmark}")
    parts += [spec.source(f"test_f{i}", in_class=False) for i, spec in enumerate(functions)]
    for c, (class_marker, methods) in enumerate(classes):
        body = [spec.source(f"test_m{i}", in_class=True) for i, spec in enumerate(methods)]
        header = f"@pytest.mark.{class_marker}\n" if class_marker else ""
        methods_source = textwrap.indent("\n\n".join(body), "    ")
        parts.append(
            f"{header}class TestC{c}:\n    def test_uses_klass(self, klass):\n"
            f"        use(klass)\n\n{methods_source}"
        )
    return "\n\n\n".join(parts) + "\n"


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(suite=st.lists(modules, min_size=1, max_size=3), workers=st.integers(1, 6))
def test_generated_suites_match_plain_pytest(
    pytester: pytest.Pytester, suite: list[ModuleSpec], workers: int
) -> None:
    for stale in pytester.path.glob("test_gen*.py"):
        stale.unlink()
    pytester.makeini(INI)
    pytester.makeconftest(RECORDER + FIXTURES)
    for index, module in enumerate(suite):
        (pytester.path / f"test_gen{index}.py").write_text(module_source(module))
    plain = run(pytester, "-p", "no:dynpool")
    pooled = run(pytester, "--dynpool-workers", str(workers))
    assert pooled.result.ret == plain.result.ret
    assert pooled.outcomes == plain.outcomes
    assert pooled.counts("setup") == plain.counts("setup")
    assert pooled.counts("teardown") == plain.counts("teardown")
    assert_torn_down_after_last_use(pooled.events)
