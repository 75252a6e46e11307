"""What a pooled test does stays its own, and what it reports is what plain pytest reports.

Each test here is a regression test for one item of issues 11 and 16, and most are
differential: the same suite runs under plain pytest (``-p no:dynpool``) and on the pool,
and the outcomes must agree.
"""

from __future__ import annotations

import pytest

from .conftest import outcomes_by_nodeid

pytest_plugins = ["pytester"]

INI = """
[pytest]
markers =
    dynpool: registered so that -p no:dynpool runs without warnings
"""


def _plain_and_pooled(
    pytester: pytest.Pytester, *args: str, workers: int = 4
) -> tuple[pytest.RunResult, pytest.RunResult]:
    if not (pytester.path / "pytest.ini").exists():
        pytester.makeini(INI)
    plain = pytester.runpytest("-p", "no:dynpool", *args)
    pooled = pytester.runpytest("--dynpool-workers", str(workers), *args)
    return plain, pooled


def _assert_same_outcomes(plain: pytest.RunResult, pooled: pytest.RunResult) -> None:
    assert outcomes_by_nodeid(plain), "plain pytest ran nothing: the comparison proves nothing"
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    assert pooled.ret == plain.ret


# --- 11.6: a logger level set by a session fixture holds for every test of the session -----

SESSION_LOGGER_LEVEL = """
import logging
import pytest

pytestmark = pytest.mark.dynpool(4)

@pytest.fixture(scope="session")
def app_debug():
    logging.getLogger("app").setLevel(logging.DEBUG)
    yield
    logging.getLogger("app").setLevel(logging.NOTSET)

@pytest.mark.parametrize("n", range(8))
def test_level(n, app_debug, caplog):
    logging.getLogger("app").debug("debug %s", n)
    assert logging.getLogger("app").getEffectiveLevel() == logging.DEBUG
    assert [r.getMessage() for r in caplog.records] == [f"debug {n}"]
"""


def test_session_fixture_logger_level_holds_for_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_levels=SESSION_LOGGER_LEVEL)
    plain, pooled = _plain_and_pooled(pytester)
    plain.assert_outcomes(passed=8)
    _assert_same_outcomes(plain, pooled)


# --- 16.2: a thread started by a session fixture logs into the test in flight ---------------

SESSION_THREAD_LOGS = """
import logging
import queue
import threading
import pytest

pytestmark = pytest.mark.dynpool(1)

@pytest.fixture(scope="session")
def server():
    requests = queue.Queue()

    def serve():
        while (message := requests.get()) is not None:
            text, done = message
            logging.getLogger("server").warning("served %s", text)
            done.set()

    thread = threading.Thread(target=serve)
    thread.start()

    def ask(text):
        done = threading.Event()
        requests.put((text, done))
        assert done.wait(30)

    yield ask
    requests.put(None)
    thread.join()

@pytest.mark.parametrize("n", range(4))
def test_served(n, server, caplog):
    server(f"request {n}")
    assert [r.getMessage() for r in caplog.records] == [f"served request {n}"]
"""


def test_session_fixture_thread_logs_into_the_test_in_flight(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_server=SESSION_THREAD_LOGS)
    plain, pooled = _plain_and_pooled(pytester, "-rA")
    plain.assert_outcomes(passed=4)
    _assert_same_outcomes(plain, pooled)
    # The captured-log section of each test is its own record, not the first test's.
    pooled.stdout.fnmatch_lines(["*test_served[[]3[]]*", "*served request 3*"])


# --- 16.3: a fixture inside pytest that fails in setup shows what plain pytest shows --------

FAILING_BUILTIN_FIXTURE = """
import pytest

pytestmark = pytest.mark.dynpool(2)

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown failed")

@pytest.mark.parametrize("n", range(2))
def test_needs_tmp_path(n, tmp_path):
    pass

def test_bad_teardown(bad_teardown):
    assert 0
"""


def _longreprs(result: pytest.RunResult) -> dict[tuple[str, str], str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {(r.nodeid, r.when): r.longreprtext for r in reports if r.failed}


def test_failing_fixture_traceback_has_no_plugin_frames(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_builtin=FAILING_BUILTIN_FIXTURE)
    (pytester.path / "blocker").write_text("a file where tmp_path wants a directory")
    plain, pooled = _plain_and_pooled(pytester, "--basetemp=blocker/sub")
    plain.assert_outcomes(failed=1, errors=3)
    _assert_same_outcomes(plain, pooled)
    assert (
        "NotADirectoryError"
        in _longreprs(plain)[("test_builtin.py::test_needs_tmp_path[0]", "setup")]
    )
    assert _longreprs(pooled) == _longreprs(plain)


# --- 11.23 / 16.4: a deep thread beside a test that raises and restores the recursion limit -

DEEP_BESIDE_HYPOTHESIS = """
import sys
import threading

import pytest
from hypothesis import given, settings, strategies as st

pytestmark = pytest.mark.dynpool(2)
LIMIT = sys.getrecursionlimit()
raised = threading.Event()
deep = threading.Event()
restored = threading.Event()


@pytest.fixture
def pooled(request):
    return request.config.pluginmanager.has_plugin("dynpool")


@settings(max_examples=1, database=None, deadline=None)
@given(st.just(1))
def _hypothesis_body(x):
    raised.set()  # hypothesis raised the recursion limit around this body
    assert deep.wait(30)


def test_hypothesis(pooled):
    if pooled:
        _hypothesis_body()
        restored.set()  # it has put the limit back while the other test is deep


def test_recursion(pooled):
    def down(n):
        if n == 0 and pooled:
            deep.set()
            assert restored.wait(30)
        return down(n - 1) + 1 if n > 0 else down_forever()

    def down_forever():
        return down_forever() + 1

    if pooled:
        assert raised.wait(30)
        depth = sys.getrecursionlimit() - 200
    else:
        depth = 100
    with pytest.raises(RecursionError):
        down(depth)
    assert sys.getrecursionlimit() == LIMIT
"""


def test_deep_recursion_beside_a_restored_limit_never_aborts(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_deep=DEEP_BESIDE_HYPOTHESIS)
    plain = pytester.runpytest_subprocess("-p", "no:dynpool")
    plain.assert_outcomes(passed=2)
    # Before the fix CPython aborted the process: "Cannot recover from stack overflow".
    pooled = pytester.runpytest_subprocess("--dynpool-workers", "2")
    assert "Fatal Python error" not in pooled.stderr.str()
    pooled.assert_outcomes(passed=2)
    pooled.stdout.fnmatch_lines(["*= dynpool =*"])


def test_recursion_floor_holds_a_lowering_back_until_no_thread_is_that_deep() -> None:
    import sys
    import threading

    from pytest_dynpool.isolation import recursion_limit
    from pytest_dynpool.isolation.recursion_limit import (
        recursion_safe_threads,
        settle_recursion_limit,
    )
    from pytest_dynpool.patching import Patches

    in_force = recursion_limit._original_getrecursionlimit

    before = sys.getrecursionlimit()
    deep, release = threading.Event(), threading.Event()

    def down(n: int) -> None:
        if n == 0:
            deep.set()
            release.wait(30)
            return
        down(n - 1)

    with Patches() as patches:
        recursion_safe_threads(patches)
        sys.setrecursionlimit(before + 3000)
        thread = threading.Thread(target=down, args=(before + 2000,))
        thread.start()
        assert deep.wait(30)
        sys.setrecursionlimit(before)
        assert sys.getrecursionlimit() == before  # what was asked for...
        assert in_force() > before + 2000  # ...but the deep thread keeps the real limit up
        with pytest.raises(ValueError, match="greater or equal than 1"):
            sys.setrecursionlimit(0)
        with pytest.raises(TypeError):
            sys.setrecursionlimit("100")  # type: ignore[arg-type]
        release.set()
        thread.join()
        settle_recursion_limit()
        assert in_force() == before  # the deep thread gone, the lowering applies
    assert sys.getrecursionlimit() == before


# --- 11.22: tmp_path of tests that start at once ------------------------------------------

OWN_TMP_PATHS = """
import pytest

pytestmark = pytest.mark.dynpool(8)

@pytest.mark.parametrize("n", range(16))
def test_writes_its_own_tmp_path(n, tmp_path):
    (tmp_path / "data.txt").write_text(str(n))
    assert (tmp_path / "data.txt").read_text() == str(n)
    assert len(list(tmp_path.iterdir())) == 1
"""


def test_tmp_paths_of_tests_started_at_once_never_collide(pytester: pytest.Pytester) -> None:
    # The race was on the first use of the base directory (made twice, or removed
    # under another test) and on the numbering: it failed most runs, so a few
    # runs make its absence certain enough.
    pytester.makeini(INI)
    pytester.makepyfile(test_tmp=OWN_TMP_PATHS)
    plain = pytester.runpytest("-p", "no:dynpool")
    for _ in range(4):
        pooled = pytester.runpytest("--dynpool-workers", "8")
        _assert_same_outcomes(plain, pooled)


# --- 11.8: PYTEST_CURRENT_TEST names the test that reads it ---------------------------------

CURRENT_TEST_VAR = """
import os
import threading
import pytest

pytestmark = pytest.mark.dynpool(8)
_barrier = threading.Barrier(8, timeout=30)

@pytest.fixture
def together(request):
    pooled = request.config.pluginmanager.has_plugin("dynpool")
    return _barrier.wait if pooled else lambda: None

@pytest.fixture
def checked(request, together):
    assert os.environ["PYTEST_CURRENT_TEST"] == f"{request.node.nodeid} (setup)"
    yield
    together()
    assert os.environ["PYTEST_CURRENT_TEST"] == f"{request.node.nodeid} (teardown)"

@pytest.mark.parametrize("n", range(8))
def test_sees_its_own_name(n, request, together, checked):
    together()
    assert os.environ["PYTEST_CURRENT_TEST"] == f"{request.node.nodeid} (call)"
    assert os.environ.get("PYTEST_CURRENT_TEST") == f"{request.node.nodeid} (call)"
    assert "PYTEST_CURRENT_TEST" in os.environ
    together()
"""


def test_current_test_var_names_the_test_that_reads_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_var=CURRENT_TEST_VAR)
    plain, pooled = _plain_and_pooled(pytester, workers=8)
    plain.assert_outcomes(passed=8)
    _assert_same_outcomes(plain, pooled)
