"""The HTML timeline of a real run, rendered in headless Chromium; and its escaping."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from benchmarks.chromium import INSTALL_HINT, dump_dom, find_chromium, screenshot
from pytest_dynpool.reports.html_report import render_html, timeline_data
from pytest_dynpool.reports.record import ItemRecord, RunRecord

# A test id that would run script if the page ever parsed an id as HTML: the sentinel
# attribute it sets must never appear in the DOM.
SCRIPT_ID = "<script>document.documentElement.setAttribute('data-pwned','script')</script>"
IMG_ID = "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">"

SUITE = f"""
import threading

import pytest

both_in_flight = threading.Barrier(2, timeout=60)


@pytest.mark.dynpool(2, job="api")
@pytest.mark.parametrize("n", [0, 1])
def test_api(n):
    both_in_flight.wait()  # the two items of a job with cap 2 overlap: two workers


@pytest.mark.dynpool(1, job="legacy")
@pytest.mark.parametrize(
    "name", ["plain", pytest.param(1, id={SCRIPT_ID!r}), pytest.param(2, id={IMG_ID!r})]
)
def test_legacy(name):
    pass


@pytest.mark.dynpool(1, job="legacy")
def test_fails():
    assert False


def test_alone():
    pass
"""


@pytest.fixture
def chromium() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"chromium is missing under CI=true; {INSTALL_HINT}")
        pytest.skip(f"chromium is not installed; {INSTALL_HINT}")
    return path


def test_timeline_of_a_real_run_in_headless_chromium(
    pytester: pytest.Pytester, chromium: str, tmp_path: Path
) -> None:
    pytester.makepyfile(test_timeline=SUITE)
    page = tmp_path / "timeline.html"
    result = pytester.runpytest_subprocess(
        "--dynpool-workers", "4", f"--dynpool-html={page}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=6, failed=1)
    source = page.read_text(encoding="utf-8")
    assert "<script>document" not in source  # the id is inside the page only escaped
    assert "http://" not in source.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in source

    dom, _ = dump_dom(chromium, page, tmp_path / "profile")
    bars = re.findall(r'<rect class="bar[^"]*"', dom)
    assert len(bars) == 7  # one per item, the exclusive one included
    assert len([bar for bar in bars if "bad" in bar]) == 1  # test_fails is marked
    lanes = re.findall(r'<g class="lane" data-job="([^"]*)" data-peak="(\d+)"', dom)
    # In flight as drawn from the items' spans: api's two items overlapped (the barrier),
    # legacy's cap of 1 held.
    assert sorted(lanes) == [("api", "2"), ("legacy", "1")]
    # The ids are there as text, escaped by the browser's own serializer ...
    assert "&lt;script&gt;document.documentElement.setAttribute('data-pwned','script')" in dom
    assert "&lt;img src=x onerror=" in dom
    # ... and neither ran: no sentinel on the document, and no <img> element from an id.
    assert "data-pwned=" not in dom
    assert "<img" not in dom
    assert re.search(r'data-render-ms="\d+"', dom)  # the page's own script did run to the end

    png = tmp_path / "timeline.png"
    screenshot(chromium, page, png, tmp_path / "profile")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000  # a drawn page, not a blank one


def test_no_test_id_can_end_the_data_block() -> None:
    nasty = "t.py::test[</script><script>alert(1)</script>&<!--\u2028]"
    record = RunRecord(workers=2, backend="memory", started_at="2026-01-01T00:00:00+00:00")
    record.items.append(ItemRecord(nasty, None, phases={"call": "passed"}, end=0.5))
    page = render_html(record)
    assert "</script><script>alert" not in page
    assert page.count("</script>") == 2  # the data block's and the code block's own
    data_block = page.split('<script type="application/json" id="dynpool-data">')[1]
    data = json.loads(data_block.split("</script>")[0])
    assert data["items"][0][0] == nasty  # escaped for HTML, the same string for the script
    assert data == json.loads(json.dumps(timeline_data(record)))
