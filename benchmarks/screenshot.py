"""The README's picture: the example suite's HTML timeline, screenshotted in headless Chromium.

Runs ``conftest_example`` on 8 workers with ``--dynpool-html`` and saves the top of the
page (the worker rows, the job lanes and the head of the job table) as ``docs/timeline.png``.

    python -m benchmarks.screenshot [--out docs/timeline.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from .chromium import INSTALL_HINT, find_chromium, screenshot

REPO = Path(__file__).resolve().parent.parent
SIZE = (1300, 880)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "timeline.png")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        sys.exit(f"chromium not found; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "timeline.html"
        command = [sys.executable, "-m", "pytest", "conftest_example", "-q"]
        command += ["--dynpool-workers", "8", f"--dynpool-html={page}", "-p", "no:cacheprovider"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"the example suite failed:\n{done.stdout}{done.stderr}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(chromium, page, args.out, Path(tmp) / "profile", SIZE)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
