"""Tests that change process-wide state run alone, outside the pool (issue 11 item 24)."""

from __future__ import annotations

import pytest

from tests.conftest import outcomes_by_nodeid

IN_FLIGHT_CONFTEST = """
import threading
import pytest

lock = threading.Lock()
in_flight = [0]
seen = {}

@pytest.fixture(autouse=True)
def count_in_flight(request):
    with lock:
        in_flight[0] += 1
        seen[request.node.name] = in_flight[0]
    yield
    with lock:
        in_flight[0] -= 1

def pytest_unconfigure(config):
    with open("seen.txt", "w") as out:
        for name, count in sorted(seen.items()):
            out.write(f"{name} {count}\\n")
"""

SUITE = """
import os
import threading
import pytest

pytestmark = pytest.mark.dynpool(4)
pair = threading.Barrier(2, timeout=60)

@pytest.fixture
def meet(request):
    # The two pooled tests overlap when the pool runs; plain pytest runs them in turn.
    return pair.wait if request.config.pluginmanager.has_plugin("dynpool") else lambda: None

@pytest.mark.parametrize("n", range(2))
def test_pooled(n, meet):
    meet()

@pytest.mark.parametrize("n", range(3))
def test_env(n, monkeypatch, tmp_path):
    monkeypatch.setenv("DYNPOOL_ALONE_VALUE", str(n))
    monkeypatch.chdir(tmp_path)
    assert os.environ["DYNPOOL_ALONE_VALUE"] == str(n)
    assert os.getcwd() == str(tmp_path)

@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(os, "sep", "|")
    return os.sep

def test_through_a_fixture(patched):
    assert patched == os.sep == "|"

@pytest.mark.dynpool_alone
class TestMarked:
    def test_one(self):
        pass

    def test_two(self):
        pass
"""


def _seen(pytester: pytest.Pytester) -> dict[str, int]:
    lines = (pytester.path / "seen.txt").read_text().splitlines()
    return {name: int(count) for name, count in (line.rsplit(" ", 1) for line in lines)}


def test_tests_with_thread_unsafe_fixtures_or_the_marker_run_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(IN_FLIGHT_CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        [
            "dynpool: 1 jobs, 2 pooled items, 6 exclusive items",
            "alone: 6 items of jobs ran alone, for a thread-unsafe fixture or the dynpool_alone "
            "marker (dynpool_alone 2, monkeypatch 4)",
        ]
    )
    seen = _seen(pytester)
    alone = {name: count for name, count in seen.items() if not name.startswith("test_pooled")}
    assert len(alone) == 6
    assert set(alone.values()) == {1}  # nothing else was in flight beside them
    assert seen["test_pooled[0]"] + seen["test_pooled[1]"] == 3  # these two overlapped


def test_the_outcomes_are_plain_pytests(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(IN_FLIGHT_CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    plain = pytester.runpytest("-p", "no:dynpool")
    pooled = pytester.runpytest("--dynpool-workers", "4")
    assert pooled.ret == plain.ret == pytest.ExitCode.OK
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)


def test_the_ini_list_replaces_the_default(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ndynpool_exclusive_fixtures = tmp_path\n")
    pytester.makeconftest(IN_FLIGHT_CONFTEST)
    pytester.makepyfile(
        test_suite="""
import pytest

pytestmark = pytest.mark.dynpool(4)

def test_tmp(tmp_path):
    pass

@pytest.mark.parametrize("n", range(2))
def test_patching(n, monkeypatch):
    pass
"""
    )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["dynpool: 1 jobs, 2 pooled items, 1 exclusive items", "alone: 1 items*(tmp_path 1)"]
    )


def test_unmarked_tests_in_the_pool_run_alone_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_suite="""
def test_plain():
    pass

def test_patching(monkeypatch):
    pass
"""
    )
    result = pytester.runpytest("--dynpool-workers", "4", "--dynpool-unmarked", "pool")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["dynpool: 1 jobs, 1 pooled items, 1 exclusive items"])
