"""Fixtures under concurrency behave as in plain pytest: differential runs with the plugin off.

The generated suites record every fixture setup, use and teardown (tagged with
the scope instance) in an event log. A dynpool run must produce the same
outcome per node id and the same number of setups and teardowns of each
fixture instance as ``-p no:dynpool``, and tear every instance down after its
last use.
"""

from __future__ import annotations

import textwrap
from collections import Counter

import pytest

from .suite_generator import Run, run

RECORDER = """
import json
import os
import threading

import pytest

_lock = threading.Lock()
EVENTS = os.path.join(str(pytest.__file__ and os.getcwd()), "events.jsonl")


def record(kind, tag):
    with _lock:
        with open(EVENTS, "a") as log:
            log.write(json.dumps([kind, tag]) + "\\n")


def use(*tags):
    for tag in tags:
        record("use", tag)
"""

FIXTURES = """
@pytest.fixture(scope="session")
def sess():
    record("setup", "sess")
    yield "sess"
    record("teardown", "sess")


@pytest.fixture(scope="module", params=["a", "b"])
def modp(request, sess):
    tag = f"modp[{request.param}]@{request.node.nodeid}"
    record("setup", tag)
    yield tag
    record("teardown", tag)


@pytest.fixture(scope="module")
def mod_dep(modp):
    tag = f"mod_dep<{modp}>"
    record("setup", tag)
    yield tag
    record("teardown", tag)


@pytest.fixture(scope="class")
def klass(request):
    tag = f"klass@{request.node.nodeid}"
    record("setup", tag)
    yield tag
    record("teardown", tag)


@pytest.fixture
def func(request, sess):
    tag = f"func@{request.node.nodeid}"
    record("setup", tag)
    yield tag
    record("teardown", tag)


@pytest.fixture
def fin(request):
    tag = f"fin@{request.node.nodeid}"
    record("setup", tag)
    request.addfinalizer(lambda: record("teardown", tag))
    return tag


@pytest.fixture(autouse=True)
def auto(request):
    tag = f"auto@{request.node.nodeid}"
    record("setup", tag)
    yield tag
    record("teardown", tag)
"""

INI = """
[pytest]
markers =
    dynpool: registered so that -p no:dynpool runs without warnings
"""


def make_suite(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(RECORDER + FIXTURES)
    for path, source in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source))


def assert_same_as_plain(pytester: pytest.Pytester, *dynpool_args: str) -> tuple[Run, Run]:
    plain = run(pytester, "-p", "no:dynpool")
    pooled = run(pytester, *dynpool_args)
    assert pooled.outcomes == plain.outcomes
    assert pooled.counts("setup") == plain.counts("setup")
    assert pooled.counts("teardown") == plain.counts("teardown")
    assert pooled.result.ret == plain.result.ret
    assert_torn_down_after_last_use(pooled.events)
    assert plain.events, "the suite recorded nothing: the comparison would prove nothing"
    return plain, pooled


def assert_torn_down_after_last_use(events: list[tuple[str, str]]) -> None:
    live: Counter[str] = Counter()
    for kind, tag in events:
        if kind == "setup":
            live[tag] += 1
        elif kind == "teardown":
            live[tag] -= 1
            assert live[tag] >= 0, f"{tag} torn down more often than set up"
        elif kind == "use":
            assert live[tag] > 0, f"{tag} used while not set up"


SUITE = {
    "pkg/__init__.py": "",
    "pkg/conftest.py": """
        import pytest
        from conftest import record

        @pytest.fixture(scope="package")
        def pkg(request):
            tag = f"pkg@{request.node.nodeid}"
            record("setup", tag)
            yield tag
            record("teardown", tag)
    """,
    "pkg/test_m1.py": """
        import time
        import pytest
        from conftest import use

        pytestmark = pytest.mark.dynpool(3)

        def setup_module(module):
            from conftest import record
            record("setup", "xunit_module@pkg/test_m1.py")

        def teardown_module(module):
            from conftest import record
            record("teardown", "xunit_module@pkg/test_m1.py")

        @pytest.mark.parametrize("n", range(4))
        def test_params(n, modp, mod_dep, func, fin, pkg):
            time.sleep(0.005)
            use(modp, mod_dep, func, fin, pkg, "xunit_module@pkg/test_m1.py")

        class TestK:
            @classmethod
            def setup_class(cls):
                from conftest import record
                record("setup", "xunit_class@TestK")

            @classmethod
            def teardown_class(cls):
                from conftest import record
                record("teardown", "xunit_class@TestK")

            def setup_method(self, method):
                from conftest import record
                self.tag = f"xunit_method@{method.__name__}"
                record("setup", self.tag)

            def teardown_method(self, method):
                from conftest import record
                record("teardown", self.tag)

            @pytest.mark.parametrize("n", range(3))
            def test_in_class(self, n, klass, func, sess):
                time.sleep(0.005)
                use(klass, func, sess, self.tag, "xunit_class@TestK")
    """,
    "pkg/test_m2.py": """
        import time
        import pytest
        from conftest import use

        @pytest.mark.dynpool(2, job="shared")
        @pytest.mark.parametrize("n", range(4))
        def test_shared(n, modp, pkg, func):
            time.sleep(0.005)
            use(modp, pkg, func)

        def test_unmarked(sess, modp):
            use(sess, modp)
    """,
    "test_top.py": """
        import time
        import pytest
        from conftest import use

        @pytest.mark.dynpool(2, job="shared")
        class TestTop:
            @pytest.mark.parametrize("n", range(3))
            def test_a(self, n, klass, mod_dep, fin):
                time.sleep(0.005)
                use(klass, mod_dep, fin)

            def test_skip(self, klass):
                pytest.skip("skipped on purpose")

            @pytest.mark.xfail(reason="expected", strict=True)
            def test_xfail(self, func):
                assert False

            def test_fails(self, func):
                use(func)
                assert 1 == 2
    """,
}


@pytest.mark.parametrize("workers", ["1", "4", "8"])
def test_every_fixture_scope_matches_plain_pytest(pytester: pytest.Pytester, workers: str) -> None:
    make_suite(pytester, SUITE)
    _, pooled = assert_same_as_plain(pytester, "--dynpool-workers", workers)
    pooled.result.assert_outcomes(passed=27, failed=1, skipped=1, xfailed=1)
    # One session instance; one per module and parameter value; one per class.
    assert pooled.counts("setup")["sess"] == 1
    assert pooled.counts("setup")["modp[a]@pkg/test_m1.py"] == 1
    assert pooled.counts("setup")["mod_dep<modp[b]@test_top.py>"] == 1
    assert pooled.counts("setup")["klass@pkg/test_m1.py::TestK"] == 1
    assert pooled.counts("setup")["pkg@pkg"] == 1


FAILING_SUITE = {
    "test_setup_fails.py": """
        import pytest
        from conftest import use

        pytestmark = pytest.mark.dynpool(3)

        @pytest.fixture(scope="module")
        def broken():
            raise RuntimeError("module setup failed")

        @pytest.mark.parametrize("n", range(3))
        def test_needs_broken(n, broken):
            pass

        def test_fine(func):
            use(func)
    """,
    "test_xunit_fails.py": """
        import pytest

        pytestmark = pytest.mark.dynpool(2)

        def setup_module(module):
            raise RuntimeError("setup_module failed")

        @pytest.mark.parametrize("n", range(3))
        def test_never(n):
            pass
    """,
    "test_teardown_fails.py": """
        import pytest
        from conftest import use, record

        pytestmark = pytest.mark.dynpool(1)

        @pytest.fixture(scope="class")
        def bad_class_teardown():
            record("setup", "bad_class")
            yield "bad_class"
            record("teardown", "bad_class")
            raise RuntimeError("class teardown failed")

        @pytest.fixture
        def bad_function_teardown(request):
            yield
            raise RuntimeError(f"function teardown failed {request.node.name}")

        class TestC:
            @pytest.mark.parametrize("n", range(3))
            def test_c(self, n, bad_class_teardown):
                use(bad_class_teardown)

        @pytest.mark.parametrize("n", range(2))
        def test_f(n, bad_function_teardown):
            pass
    """,
    "test_parallel_teardown_fails.py": """
        import pytest
        from conftest import use, record

        pytestmark = pytest.mark.dynpool(4)

        @pytest.fixture(scope="module")
        def bad_module_teardown():
            record("setup", "bad_module")
            yield "bad_module"
            record("teardown", "bad_module")
            raise RuntimeError("module teardown failed")

        @pytest.mark.parametrize("n", range(4))
        def test_m(n, bad_module_teardown):
            use(bad_module_teardown)
    """,
}


def test_failing_setups_and_teardowns_error_the_same_tests(pytester: pytest.Pytester) -> None:
    make_suite(pytester, {k: v for k, v in FAILING_SUITE.items() if "parallel" not in k})
    _, pooled = assert_same_as_plain(pytester, "--dynpool-workers", "4")
    pooled.result.assert_outcomes(passed=6, errors=9)
    pooled.result.stdout.fnmatch_lines(["*RuntimeError: module setup failed*"])


def test_wider_teardown_error_lands_on_one_item_of_its_scope(pytester: pytest.Pytester) -> None:
    """Which item reports a module's teardown error depends on which finishes last."""
    make_suite(
        pytester,
        {"test_parallel_teardown_fails.py": FAILING_SUITE["test_parallel_teardown_fails.py"]},
    )
    plain = run(pytester, "-p", "no:dynpool")
    pooled = run(pytester, "--dynpool-workers", "4")
    plain.result.assert_outcomes(passed=4, errors=1)
    pooled.result.assert_outcomes(passed=4, errors=1)
    assert (
        pooled.counts("setup")
        == plain.counts("setup")
        == Counter(
            {
                "bad_module": 1,
                **{f"auto@test_parallel_teardown_fails.py::test_m[{n}]": 1 for n in range(4)},
            }
        )
    )
    assert_torn_down_after_last_use(pooled.events)


def test_function_fixtures_are_never_shared_between_items_in_flight(
    pytester: pytest.Pytester,
) -> None:
    """Four items held together at a barrier each see their own function fixtures."""
    pytester.makepyfile(
        test_gate="""
        import threading
        import pytest

        barrier = threading.Barrier(4, timeout=30)
        seen = []
        lock = threading.Lock()

        @pytest.fixture
        def token(request):
            value = object()
            yield value, request.node.nodeid
            with lock:
                seen.append((id(value), request.node.nodeid))

        @pytest.fixture
        def counter():
            return []

        @pytest.mark.dynpool(4)
        @pytest.mark.parametrize("n", range(4))
        def test_overlap(n, token, counter, request):
            value, owner = token
            assert owner == request.node.nodeid
            counter.append(n)
            barrier.wait()  # all four in flight at once
            assert counter == [n]
            assert request.getfixturevalue("token") is token

        def test_after():
            assert len(seen) == 4
            assert len({owner for _, owner in seen}) == 4
        """
    )
    # The exclusive test runs first in dynpool: move it last by running it separately.
    result = pytester.runpytest("--dynpool-workers", "4", "-k", "overlap")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_gate.py::test_overlap *4 *4 *4 *0 *0 *4 *"])


def test_session_fixture_created_once_under_contention(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_once="""
        import threading
        import time
        import pytest

        created = []
        barrier = threading.Barrier(6, timeout=30)

        @pytest.fixture(scope="session")
        def expensive():
            created.append(1)
            time.sleep(0.05)  # widen the window in which others request it
            return object()

        @pytest.mark.dynpool(6)
        @pytest.mark.parametrize("n", range(6))
        def test_uses(n, request):
            barrier.wait()  # request the fixture from six threads at once
            value = request.getfixturevalue("expensive")
            assert created == [1]
            assert value is request.getfixturevalue("expensive")
        """
    )
    result = pytester.runpytest("--dynpool-workers", "6")
    result.assert_outcomes(passed=6)


def test_a_scope_is_torn_down_only_after_the_scopes_inside_it(pytester: pytest.Pytester) -> None:
    """Regression (found by the generated suites): the item that released the session
    tore it down while another thread was still tearing down a module that used it.

    Item a's module teardown holds until item b has finished its own teardown. b
    is then not the last user of the session any more: a is, once its module is down.
    """
    pytester.makeconftest(
        """
        import threading
        import pytest

        a_module_teardown_started = threading.Event()
        b_torn_down = threading.Event()
        session_closed = threading.Event()

        @pytest.fixture(scope="session")
        def sres():
            yield "open"
            session_closed.set()

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_teardown(item):
            try:
                return (yield)
            finally:
                if item.name == "test_b":
                    b_torn_down.set()
        """
    )
    pytester.makepyfile(
        test_a="""
        import pytest
        from conftest import a_module_teardown_started, b_torn_down, session_closed

        @pytest.fixture(scope="module")
        def mres(sres):
            yield
            a_module_teardown_started.set()
            assert b_torn_down.wait(timeout=30)
            if session_closed.is_set():
                raise RuntimeError("session fixture torn down under a module that uses it")

        @pytest.mark.dynpool(2, job="j")
        def test_a(mres):
            pass
        """,
        test_b="""
        import pytest
        from conftest import a_module_teardown_started

        @pytest.mark.dynpool(2, job="j")
        def test_b(sres):
            assert a_module_teardown_started.wait(timeout=30)
        """,
    )
    result = pytester.runpytest("--dynpool-workers", "2")
    result.assert_outcomes(passed=2)


def test_no_fixture_instance_outlives_its_function_scope(pytester: pytest.Pytester) -> None:
    """Parametrized items and the ``request`` pseudo-fixture leave nothing in the store:
    10,000 such entries kept until the session ends only lengthen each garbage collection."""
    pytester.makeconftest(
        """
        import pytest
        from pytest_dynpool.runtime.fixture_store import FIXTURE_STORE_KEY

        @pytest.fixture
        def uses_request(request):
            yield request.node.name

        def pytest_dynpool_run_finished(config, stats):
            store = config.stash.get(FIXTURE_STORE_KEY, None)
            with open("store.txt", "w") as out:
                out.write("no store" if store is None else str(len(store)))
        """
    )
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.dynpool(2)

        @pytest.mark.parametrize("value", range(6))
        def test_param(value, request, uses_request):
            assert uses_request == request.node.name
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2")
    result.assert_outcomes(passed=6)
    assert (pytester.path / "store.txt").read_text() == "0"
