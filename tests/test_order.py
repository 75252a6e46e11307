"""The dispatch order through pytest: durations kept in the cache, the option, fixtures."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from benchmarks.scopes import fixture_module
from pytest_dynpool.durations import CACHE_KEY

from .conftest import assert_no_worker_left

# Items log their start in a file; with one worker the start order is the dispatch order.
SUITE = """
import pytest

pytestmark = pytest.mark.dynpool(1, job="one")


def log(name):
    with open("starts.log", "a") as out:
        out.write(name + "\\n")


@pytest.mark.parametrize("n", range(4))
def test_quick(n):
    log(f"quick{n}")


def test_slow():
    log("slow")
"""

SEED_CONFTEST = """
import pytest


@pytest.hookimpl(trylast=True)  # after the cache plugin has set config.cache
def pytest_configure(config):
    config.cache.set({key!r}, {durations!r})
"""


def starts(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "starts.log"
    order = path.read_text().split()
    path.unlink()
    return order


def seed(pytester: pytest.Pytester, durations: Mapping[str, object]) -> None:
    pytester.makeconftest(SEED_CONFTEST.format(key=CACHE_KEY, durations=durations))


def test_known_durations_start_the_longest_item_first(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    seed(pytester, {"test_suite.py::test_slow": 5.0, "test_suite.py::test_quick[2]": 1.0})
    pytester.runpytest("--dynpool-workers", "1").assert_outcomes(passed=5)
    # quick[0,1,3] are new, expected to take their job's median, which learns from what ran:
    # of 5 s, 1 s and slow's few ms it is 1 s, a tie with quick[2] that collection order
    # breaks; once quick0 has taken a few ms it falls below 1 s, so quick[2] goes next.
    assert starts(pytester) == ["slow", "quick0", "quick2", "quick1", "quick3"]
    pytester.runpytest("--dynpool-workers", "1", "--dynpool-order", "collection")
    assert starts(pytester) == ["quick0", "quick1", "quick2", "quick3", "slow"]
    assert_no_worker_left()


def test_ini_key_chooses_the_order(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\ndynpool_order = count\n")
    seed(pytester, {"test_suite.py::test_slow": 5.0, "test_suite.py::test_quick[0]": 0.0})
    pytester.runpytest("--dynpool-workers", "1").assert_outcomes(passed=5)
    assert starts(pytester) == ["quick0", "quick1", "quick2", "quick3", "slow"]
    pytester.runpytest("--dynpool-workers", "1", "--dynpool-order", "duration")
    # the new quick items are expected to take the job's median, above quick[0]'s 0 s
    assert starts(pytester) == ["slow", "quick1", "quick2", "quick3", "quick0"]


def test_a_run_keeps_every_pooled_items_duration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makepyfile(test_other="def test_unmarked():\n    pass\n")
    stale = {"test_gone.py::test_x": 2.5, "test_suite.py::test_slow": 99.0}
    cache_file = pytester.path / ".pytest_cache" / "v" / CACHE_KEY
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text(json.dumps(stale))
    pytester.runpytest("--dynpool-workers", "2").assert_outcomes(passed=6)
    kept = json.loads(cache_file.read_text())
    pooled = {f"test_suite.py::test_quick[{n}]" for n in range(4)} | {"test_suite.py::test_slow"}
    assert set(kept) == pooled | {"test_gone.py::test_x"}  # exclusive items are not kept
    assert kept["test_gone.py::test_x"] == 2.5  # not selected: kept as it was
    assert 0 <= kept["test_suite.py::test_slow"] < 99.0  # measured again


def test_without_the_cache_plugin_nothing_is_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--dynpool-workers", "2", "-p", "no:cacheprovider").assert_outcomes(passed=5)
    assert not (pytester.path / ".pytest_cache").exists()


def test_a_cache_entry_of_the_wrong_shape_is_ignored(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    seed(pytester, {"test_suite.py::test_slow": "long", "test_suite.py::test_quick[0]": -1})
    pytester.runpytest("--dynpool-workers", "1").assert_outcomes(passed=5)
    # As with nothing known: one item of each function first, then collection order.
    assert starts(pytester) == ["quick0", "slow", "quick1", "quick2", "quick3"]


# Three modules (benchmarks.scopes.fixture_module), each with a module fixture, and items
# whose known durations interleave the modules: by duration, each module's items are spread
# over the run.


@pytest.mark.parametrize("order", ["duration", "count", "collection"])
def test_reordering_sets_up_each_module_fixture_once(pytester: pytest.Pytester, order: str) -> None:
    """The setup tree keeps a module alive until its last item: no module is set up twice."""
    names = ["a", "b", "c"]
    for name in names:
        module = fixture_module(name, cap=2, job="all", items=4, log_runs=True)
        pytester.makepyfile(**{f"test_{name}": module})
    # Durations that interleave modules: a0 c0 b0 a1 c1 b1 ... by duration.
    durations = {
        f"test_{name}.py::test_item[{n}]": float(100 - 10 * n - m)
        for m, name in enumerate(names)
        for n in range(4)
    }
    seed(pytester, durations)
    pytester.runpytest("--dynpool-workers", "1", "--dynpool-order", order).assert_outcomes(
        passed=12
    )
    log = (pytester.path / "fixtures.log").read_text().splitlines()
    plain = [f"{kind} {name}" for name in names for kind in ["setup", *["run"] * 4, "teardown"]]
    assert sorted(log) == sorted(plain)  # one setup and one teardown per module, as plain
    if order == "duration":
        # Every module stays open while the others run: all three alive at once.
        assert log[:6] == ["setup a", "run a", "setup b", "run b", "setup c", "run c"]
        assert log[-6:] == ["run a", "teardown a", "run b", "teardown b", "run c", "teardown c"]
    else:
        assert log == plain
