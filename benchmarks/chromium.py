"""Headless Chromium for the HTML timeline: the DOM after its scripts ran, and screenshots.

Shared by the timeline test, the timeline benchmark and the README screenshot script.
Every flag keeps the browser off the network and away from the user's profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

INSTALL_HINT = "install it with: apt-get install chromium (the Debian package)"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    """The browser's path: ``$CHROMIUM``, else ``/usr/bin/chromium``, else on ``$PATH``."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(chromium: str, profile: Path, *args: str) -> tuple[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout, time.perf_counter() - started


def dump_dom(chromium: str, page: Path, profile: Path) -> tuple[str, float]:
    """The page's DOM once its scripts ran, and the seconds the browser took in all."""
    return _run(chromium, profile, "--dump-dom", page.resolve().as_uri())


def screenshot(
    chromium: str, page: Path, png: Path, profile: Path, size: tuple[int, int] = (1400, 1000)
) -> float:
    """Save a PNG of the page at ``size`` (width, height); the seconds it took."""
    _, seconds = _run(
        chromium,
        profile,
        f"--screenshot={png.resolve()}",
        f"--window-size={size[0]},{size[1]}",
        "--hide-scrollbars",
        page.resolve().as_uri(),
    )
    return seconds
