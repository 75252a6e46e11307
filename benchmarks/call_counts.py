"""Count every Python function call of one pytest run, all threads, by file and function.

    python benchmarks/call_counts.py [pytest args...] SUITE 2> counts.txt

Run it with each checkout's own interpreter on the same suite and diff the outputs. Call
counts do not depend on machine load, unlike CPU or wall time, so on a busy machine they
show where added per-test work comes from (issue 10's before/after). The profiler slows
the run several times; its counts are the figure, not its duration. Output, on stderr
(pytest keeps stdout): the total,
then one ``count file:function`` line per function, most called first; files are shown
from their package (``_pytest/...``, ``pytest_dynpool/...``) or by name.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from types import FrameType

import pytest

CALLS: Counter[str] = Counter()
PACKAGES = ("pytest_dynpool/", "_pytest/", "pluggy/")


def _where(filename: str) -> str:
    for package in PACKAGES:
        if package in filename:
            return package + filename.rsplit(package, 1)[1]
    return filename.rsplit("/", 1)[-1]


def _count(frame: FrameType, event: str, arg: object) -> None:
    if event == "call":  # a generator's resume is a "call" too: hook wrappers count twice
        code = frame.f_code
        CALLS[f"{_where(code.co_filename)}:{code.co_name}"] += 1


def main(argv: list[str]) -> int:
    threading.setprofile(_count)
    sys.setprofile(_count)
    try:
        code = pytest.main(argv)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    lines = [f"total {sum(CALLS.values())} (pytest exit code {int(code)})"]
    lines += [f"{count} {name}" for name, count in CALLS.most_common()]
    print("\n".join(lines), file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
