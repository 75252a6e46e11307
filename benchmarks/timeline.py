"""The reports at scale: a real run of 50,000 tests with --dynpool-report and --dynpool-html.

Runs the scale scenario's suite (500 jobs of 100 trivial tests, caps 1/2/4/8, 4 workers)
without reports and with both, in fresh processes: the wall-time ratio is what recording
and writing cost. Then opens the HTML page in headless Chromium: the in-page render time
(the page's own ``performance.now()`` from its first script line to the end of drawing,
``data-render-ms``), and the whole browser run against an empty page's, for the load and
parse time around it. Prints a markdown table; figures in BENCHMARKS.md.

    python -m benchmarks.timeline [--items 50000] [--smoke]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from . import scale
from .chromium import INSTALL_HINT, dump_dom, find_chromium, screenshot
from .common import Settings, Workspace, prime, progress, ratio, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="browser runs; the best counts")
    parser.add_argument("--smoke", action="store_true", help="500 tests, one browser run")
    args = parser.parse_args(argv)
    items = 500 if args.smoke else args.items
    rounds = 1 if args.smoke else args.rounds
    chromium = find_chromium()
    if chromium is None:
        sys.exit(f"chromium not found; {INSTALL_HINT}")
    settings = Settings(smoke=args.smoke, rounds=1)
    with tempfile.TemporaryDirectory() as pycache:
        prime(settings, Path(pycache))
        measure(chromium, settings, Path(pycache), items, rounds)


def measure(chromium: str, settings: Settings, pycache: Path, items: int, rounds: int) -> None:
    with Workspace("dynpool-bench-timeline-", settings, pycache) as workspace:
        jobs = scale.write_suite(workspace, items)
        suite = workspace.root / f"scale-{items}"
        workspace.warm_up(suite)
        pool = ("--dynpool-workers", str(scale.WORKERS))
        bare = workspace.run(suite, pool, passed=items)
        progress(f"timeline: {items} tests without reports, {bare.wall:.2f}s")
        report, page = workspace.root / "report.json", workspace.root / "timeline.html"
        reports = (f"--dynpool-report={report}", f"--dynpool-html={page}")
        with_reports = workspace.run(suite, (*pool, *reports), passed=items)
        progress(f"timeline: {items} tests with reports, {with_reports.wall:.2f}s")
        empty = workspace.root / "empty.html"
        empty.write_text("<!DOCTYPE html><title>empty</title>", encoding="utf-8")
        browser: list[float] = []
        baseline: list[float] = []
        render_ms: list[int] = []
        shots: list[float] = []
        for round_ in range(rounds):
            profile = workspace.root / f"profile-{round_}"
            _, seconds = dump_dom(chromium, empty, profile)
            baseline.append(seconds)
            dom, seconds = dump_dom(chromium, page, profile)
            browser.append(seconds)
            found = re.search(r'data-render-ms="(\d+)"', dom)
            if found is None or dom.count('<rect class="bar') != items:
                sys.exit("the page did not draw a bar per item")
            render_ms.append(int(found.group(1)))
            progress(f"timeline: browser {seconds:.2f}s, render {render_ms[-1]} ms")
            png = workspace.root / "timeline.png"
            shots.append(screenshot(chromium, page, png, profile))
            progress(f"timeline: screenshot {shots[-1]:.2f}s")
        json_mb, html_mb = report.stat().st_size / 1e6, page.stat().st_size / 1e6
    print(
        table(
            [
                "tests",
                "jobs",
                "wall without reports s",
                "wall with reports s",
                "ratio",
                "JSON MB",
                "HTML MB",
                "render in page s",
                "browser run s (--dump-dom)",
                "screenshot run s",
                "empty page run s",
            ],
            [
                [
                    f"{items:,}",
                    str(jobs),
                    f"{bare.wall:.2f}",
                    f"{with_reports.wall:.2f}",
                    ratio(with_reports.wall, bare.wall),
                    f"{json_mb:.1f}",
                    f"{html_mb:.1f}",
                    f"{min(render_ms) / 1000:.2f}",
                    f"{min(browser):.2f}",
                    f"{min(shots):.2f}",
                    f"{min(baseline):.2f}",
                ]
            ],
        )
    )


if __name__ == "__main__":
    main()
