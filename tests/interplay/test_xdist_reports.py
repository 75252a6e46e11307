"""pytest-xdist: one report for the whole run, written by the controller, items by process."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("xdist")


def test_controller_writes_one_report_with_every_items_process(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(6))
        def test_n(n):
            assert n != 3
        """
    )
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:randomly", f"--dynpool-report={report}", timeout=120
    )
    assert result.ret == 1
    document = json.loads(report.read_text(encoding="utf-8"))
    items = document["items"]
    assert sorted(item["nodeid"] for item in items) == [f"test_x.py::test_n[{n}]" for n in range(6)]
    assert {item["process"] for item in items} <= {"gw0", "gw1"}
    assert all(item["process"] for item in items)
    assert document["run"]["processes"] == sorted({item["process"] for item in items})
    outcomes = {item["nodeid"]: item["outcome"] for item in items}
    assert outcomes["test_x.py::test_n[3]"] == "failed"
    assert not list(pytester.path.glob("*.partial"))
