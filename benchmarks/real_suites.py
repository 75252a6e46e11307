"""Run third-party test suites whole, plain pytest against the pool, and compare per test.

Not a benchmark and not run by CI or by the test suite: it downloads packages. It
reproduces the README table *Real suites on the pool*. For each suite it makes a
throwaway venv (``<workdir>/venv-NAME``) with the suite's sources (an sdist from PyPI, or
a git checkout given with ``--source``), its test dependencies and this plugin (editable,
from this checkout), then runs the suite twice with ``--junitxml``:

- plain:  ``python -m pytest -p no:dynpool ARGS``
- pool:   ``python -m pytest --dynpool-unmarked=pool --dynpool-workers N
  --dynpool-timeout 120 ARGS`` (a test that overlapping tests made hang fails after
  ``--hung`` seconds instead of losing the whole run to ``--timeout``)

and compares the outcome of every test (junitxml ``classname::name``; ``passed``,
``failed``, ``error``, ``skipped``, ``xfailed``, and combinations such as
``passed+error`` for a teardown error). Prints one markdown row per suite, then every
test whose outcome differs with the first line of the pool's message, and the pool's
``alone:`` summary line. Each run is bounded (``--timeout``, default 600 s); a run that
leaves no junitxml (crashed, killed) is reported as such. Wall times are informative:
the machine is shared.

    python benchmarks/real_suites.py setup structlog click        # venvs (pip, network)
    python benchmarks/real_suites.py run structlog click --workers 8
    python benchmarks/real_suites.py run sortedcontainers --source ~/src/sortedcontainers
    python benchmarks/real_suites.py list

Outputs (xml and terminal text of each run) stay in ``<workdir>/out/NAME/``
(``plain.*``, ``pool-wN.*``). ``--workers 1`` tells the plugin's differences from the
suite's: with one worker no two tests overlap, so what still differs is the plugin's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Suites that turn warnings into errors (click, dateutil) would fail to collect on pytest 9
# for a deprecation of pytest's own (a generator given to parametrize).
COMMON = ("-W", "ignore::pytest.PytestRemovedIn10Warning")
SHOWN = 60  # differing tests printed per suite (all are in the junitxml files)


@dataclass(frozen=True)
class Suite:
    """A third-party suite: where its sources come from and how its tests run."""

    name: str
    requirement: str  # NAME==VERSION of the sdist (or of the tag given with --source)
    deps: tuple[str, ...]  # its test dependencies
    args: tuple[str, ...] = ("tests",)  # pytest arguments, from the source directory
    note: str = ""


SUITES = {
    s.name: s
    for s in (
        Suite(
            "sortedcontainers",
            "sortedcontainers==2.4.0",
            ("pytest",),
            args=(),  # its tox.ini: --doctest-modules, testpaths docs sortedcontainers tests
            note="the sdist has no tests: pass --source with a checkout of tag v2.4.0",
        ),
        Suite(
            "click",
            "click==8.1.7",
            ("pytest",),
        ),
        Suite("pyparsing", "pyparsing==3.1.4", ("pytest", "railroad-diagrams", "jinja2")),
        Suite(
            "dateutil",
            "python-dateutil==2.9.0.post0",
            (
                "pytest",
                "pytest-cov",
                "freezegun",
                "hypothesis",
                "six",
            ),  # pytest-cov: its no_cover mark
        ),
        Suite(
            "structlog",
            "structlog==24.4.0",
            ("pytest", "freezegun", "pretend", "pytest-asyncio", "simplejson", "rich"),
        ),
        Suite("jinja2", "jinja2==3.1.4", ("pytest", "trio")),
        Suite(
            "cattrs",
            "cattrs==24.1.2",
            (
                "pytest",
                "hypothesis",
                "immutables",
                "typing-extensions",
                "pytest-benchmark",
                # its preconf tests import every format library
                "ujson",
                "orjson",
                "msgpack",
                "pyyaml",
                "tomlkit",
                "cbor2",
                "pymongo",
                "msgspec",
            ),
            # its addopts hold --benchmark-* options: pytest-benchmark stays on
        ),
        Suite(
            "httpx",
            "httpx==0.27.2",
            (
                "pytest",
                "trustme",
                "uvicorn",
                "chardet",
                "brotli",
                "zstandard",
                "trio",
                "h2",
                "socksio",
                "rich",
                "click",
                "pygments",
                "cryptography",
            ),
        ),
    )
}


def venv_python(workdir: Path, suite: Suite) -> Path:
    return workdir / f"venv-{suite.name}" / "bin" / "python"


def source_dir(workdir: Path, suite: Suite, given: Path | None) -> Path:
    if given is not None:
        return given
    name, version = suite.requirement.split("==")
    found = sorted(workdir.glob(f"{name.lower()}-{version}"))
    if not found:
        raise SystemExit(f"{suite.name}: no sources in {workdir}; run `setup` first")
    return found[0]


def setup(workdir: Path, suite: Suite, given: Path | None) -> None:
    """Make the venv: the plugin (editable), the suite's sources (editable), its deps."""
    if given is None:
        dl = workdir / "dl"
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:"]
        subprocess.run([*pip, "--no-deps", suite.requirement, "-d", str(dl)], check=True)
        name, version = suite.requirement.split("==")
        for archive in dl.glob(f"{name.replace('-', '?')}-{version}.tar.gz"):
            with tarfile.open(archive) as tar:
                tar.extractall(workdir, filter="data")
    src = source_dir(workdir, suite, given)
    subprocess.run([sys.executable, "-m", "venv", str(venv_python(workdir, suite).parent.parent)])
    install = [str(venv_python(workdir, suite)), "-m", "pip", "install", "-q"]
    subprocess.run([*install, "-e", str(ROOT), *suite.deps], check=True)
    subprocess.run([*install, "-e", str(src)], check=True)


def outcomes(xml_file: Path) -> dict[str, str]:
    """Outcome of each test case in a junitxml file, keyed ``classname::name``."""
    result: dict[str, str] = {}
    seen: Counter[str] = Counter()
    for case in ET.parse(xml_file).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        seen[key] += 1
        if seen[key] > 1:  # two items with one junit name: keep both
            key = f"{key} #{seen[key]}"
        parts = []
        for child in case:
            if child.tag == "skipped":
                parts.append("xfailed" if child.get("type") == "pytest.xfail" else "skipped")
            elif child.tag in ("failure", "error"):
                parts.append("failed" if child.tag == "failure" else "error")
        if not parts or (parts == ["error"] and "teardown" in message(case)):
            parts.insert(0, "passed")
        result[key] = "+".join(parts)
    return result


def message(case: ET.Element) -> str:
    """First line of a test case's failure, error or skip message."""
    for child in case:
        if child.tag in ("failure", "error", "skipped"):
            lines = (child.get("message") or "").splitlines()
            return lines[0] if lines else ""
    return ""


def messages(xml_file: Path) -> dict[str, str]:
    result = {}
    for case in ET.parse(xml_file).getroot().iter("testcase"):
        result[f"{case.get('classname')}::{case.get('name')}"] = message(case)
    return result


@dataclass
class Run:
    exit_code: int | None  # None: killed by the timeout
    wall: float
    outcomes: dict[str, str] | None  # None: no junitxml (the run was lost)
    text: str


def run(python: Path, src: Path, args: list[str], xml: Path, timeout: float) -> Run:
    xml.unlink(missing_ok=True)
    command = [str(python), "-m", "pytest", "-q", "-rA", f"--junitxml={xml}", *args]
    start = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=src, capture_output=True, text=True, errors="replace", timeout=timeout
        )
        code: int | None = done.returncode
        text = done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        code, text = None, f"killed after {timeout} s\n{expired.stdout!r}"
    wall = time.monotonic() - start
    try:
        found: dict[str, str] | None = outcomes(xml)
    except (OSError, ET.ParseError):
        found = None
    return Run(code, wall, found, text)


def summary(found: dict[str, str] | None) -> str:
    if found is None:
        return "run lost (no junitxml)"
    counts = Counter(found.values())
    return ", ".join(f"{n} {outcome}" for outcome, n in counts.most_common())


def compare(
    workdir: Path, suite: Suite, given: Path | None, workers: int, timeout: float, hung: float
) -> None:
    src = source_dir(workdir, suite, given)
    python = venv_python(workdir, suite)
    out = workdir / "out" / suite.name
    out.mkdir(parents=True, exist_ok=True)
    version = suite.requirement.split("==")[1]
    plain_args = ["-p", "no:dynpool", *COMMON, *suite.args]
    plain = run(python, src, plain_args, out / "plain.xml", timeout)
    pool_args = [
        "--dynpool-unmarked=pool",
        f"--dynpool-workers={workers}",
        f"--dynpool-timeout={hung}",
        *COMMON,
        *suite.args,
    ]
    pool = run(python, src, pool_args, out / f"pool-w{workers}.xml", timeout)
    (out / "plain.txt").write_text(plain.text)
    (out / f"pool-w{workers}.txt").write_text(pool.text)
    differ = []
    if plain.outcomes is not None and pool.outcomes is not None:
        for key in sorted(set(plain.outcomes) | set(pool.outcomes)):
            a, b = plain.outcomes.get(key, "absent"), pool.outcomes.get(key, "absent")
            if a != b:
                differ.append((key, a, b))
    tests = len(plain.outcomes or {})
    print(
        f"| {suite.name} {version} | {tests} | {summary(plain.outcomes)} (exit {plain.exit_code}, "
        f"{plain.wall:.0f} s) | {summary(pool.outcomes)} (exit {pool.exit_code}, "
        f"{pool.wall:.0f} s) | {len(differ)} |",
        flush=True,
    )
    pool_messages = messages(out / f"pool-w{workers}.xml") if pool.outcomes is not None else {}
    absent = [key for key, a, b in differ if b == "absent"]
    for key, a, b in [d for d in differ if d[2] != "absent"][:SHOWN]:
        print(f"    {key}: plain {a}, pool {b}: {pool_messages.get(key.split(' #')[0], '')}")
    if len(differ) - len(absent) > SHOWN:
        print(f"    ... and {len(differ) - len(absent) - SHOWN} more differences")
    if absent:
        print(f"    {len(absent)} tests of the plain run are missing from the pool run")
    for line in pool.text.splitlines():
        if "alone:" in line:
            print(f"    {line.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("setup", "run", "list"))
    parser.add_argument("suites", nargs="*", help="names from `list` (default: all)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/suites"))
    parser.add_argument("--source", type=Path, help="a checkout of the suite (one suite only)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0, help="bound of each run")
    parser.add_argument(
        "--hung", type=float, default=120.0, help="--dynpool-timeout of the pool run"
    )
    options = parser.parse_args()
    chosen = [SUITES[name] for name in options.suites or SUITES]
    if options.source is not None and len(chosen) != 1:
        parser.error("--source applies to one suite")
    if options.action == "list":
        for suite in chosen:
            print(f"{suite.name}: {suite.requirement} {suite.note}".rstrip())
        return
    options.workdir.mkdir(parents=True, exist_ok=True)
    if options.action == "run":
        print("| suite | tests | plain pytest | pool | differences |")
        print("|---|---|---|---|---|")
    for suite in chosen:
        if options.action == "setup":
            setup(options.workdir, suite, options.source)
        else:
            compare(
                options.workdir,
                suite,
                options.source,
                options.workers,
                options.timeout,
                options.hung,
            )


if __name__ == "__main__":
    main()
