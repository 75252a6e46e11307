"""The hooks the reports are built from, as a conftest sees them."""

from __future__ import annotations

import json

import pytest

CONFTEST = """
import json
import threading

calls = []


def pytest_dynpool_item_finished(item, worker, started, ended, timed_out):
    calls.append({
        "nodeid": item.nodeid,
        "worker": worker,
        "main_thread": threading.current_thread() is threading.main_thread(),
        "ordered": started <= ended,
        "timed_out": timed_out,
    })


def pytest_sessionfinish(session):
    with open("calls.json", "w") as out:
        json.dump(calls, out)
"""

SUITE = """
import threading

import pytest

never = threading.Event()


@pytest.mark.dynpool(2, job="pool")
@pytest.mark.parametrize("n", range(3))
def test_pooled(n):
    pass


@pytest.mark.dynpool(1, job="hang", timeout=0.3)
def test_hangs():
    never.wait(60)


def test_alone():
    pass
"""


def test_item_finished_once_per_pooled_item_on_the_main_thread(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_hooks=SUITE)
    result = pytester.runpytest_subprocess("--dynpool-workers", "2")
    assert result.ret == 1
    calls = json.loads((pytester.path / "calls.json").read_text(encoding="utf-8"))
    assert sorted(call["nodeid"] for call in calls) == [
        "test_hooks.py::test_hangs",
        *(f"test_hooks.py::test_pooled[{n}]" for n in range(3)),
    ]  # once each; the exclusive item is not reported here
    assert all(call["main_thread"] and call["ordered"] for call in calls)
    assert all(call["worker"].startswith("dynpool-worker-") for call in calls)
    assert [call["nodeid"] for call in calls if call["timed_out"]] == ["test_hooks.py::test_hangs"]
