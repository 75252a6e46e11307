"""Scenario 6: how the dispatch order changes the lifetimes of module fixtures.

The duration order spreads a module's items over the run (longest first across
all modules), where the count and collection orders run a module's items together.
The setup tree sets a module up once and tears it down after its last item, so
the number of setups should not grow; what grows is how many modules are alive at
once. Durations are seeded into pytest's cache by the suite's conftest (a fixed
random draw), so the order is the same on every machine; the tests themselves are
trivial.
"""

from __future__ import annotations

import random
from collections import Counter

from .common import RESULT_CONFTEST, Workspace, table

WORKERS = 4
MODULES = 20
ITEMS = 10

SEED_CONFTEST = """

@pytest.hookimpl(trylast=True)  # after the cache plugin has set config.cache
def pytest_configure(config):
    if hasattr(config, "cache"):  # the untimed warm-up runs without it
        config.cache.set("dynpool/durations", {durations!r})
"""

MODULE = """\
import pytest

pytestmark = pytest.mark.dynpool(max_concurrency={cap}, job="{job}")


def log(line):
    with open("fixtures.log", "a") as out:
        out.write(line + "\\n")


@pytest.fixture(scope="module")
def resource():
    log("setup {name}")
    yield
    log("teardown {name}")


@pytest.mark.parametrize("n", range({items}))
def test_item(resource, n):
    {body}
"""


def fixture_module(name: str, *, cap: int, job: str, items: int, log_runs: bool = False) -> str:
    """A test module whose module fixture logs its setup and teardown to ``fixtures.log``
    (and each item's run, with ``log_runs``); its items are one job of ``cap``.

    Also written by tests/test_order.py, which checks the order of the log.
    """
    body = f'log("run {name}")' if log_runs else "pass"
    return MODULE.format(name=name, cap=cap, job=job, items=items, body=body)


def figures(lines: list[str]) -> tuple[int, int, int]:
    """Setups, teardowns, and the most module fixtures alive at once."""
    kinds = Counter(line.split()[0] for line in lines)
    alive = peak = 0
    for line in lines:
        alive += 1 if line.startswith("setup") else -1
        peak = max(peak, alive)
    return kinds["setup"], kinds["teardown"], peak


def run(workspace: Workspace) -> str:
    rng = random.Random(14)
    durations = {
        f"test_m{m:02}.py::test_item[{n}]": round(rng.uniform(0.01, 1.0), 3)
        for m in range(MODULES)
        for n in range(ITEMS)
    }
    conftest = RESULT_CONFTEST + SEED_CONFTEST.format(durations=durations)
    root = workspace.new_suite("scopes", conftest)
    for m in range(MODULES):
        (root / f"test_m{m:02}.py").write_text(
            fixture_module(f"m{m:02}", cap=4, job="scopes", items=ITEMS), encoding="utf-8"
        )
    workspace.warm_up(root)
    rows = []
    log = root / "fixtures.log"
    for label, args in (
        ("plain pytest", ["-p", "no:dynpool"]),
        ("collection", ["--dynpool-workers", str(WORKERS), "--dynpool-order", "collection"]),
        ("count", ["--dynpool-workers", str(WORKERS), "--dynpool-order", "count"]),
        ("duration", ["--dynpool-workers", str(WORKERS), "--dynpool-order", "duration"]),
    ):
        log.unlink(missing_ok=True)
        workspace.run(root, args, passed=MODULES * ITEMS, cache=True)
        setups, teardowns, peak = figures(log.read_text(encoding="utf-8").splitlines())
        rows.append([label, str(setups), str(teardowns), str(peak)])
    header = ["order", "module setups", "module teardowns", "most modules alive at once"]
    return "\n".join(
        [
            f"### 6. Module fixtures under reordering: {MODULES} modules x {ITEMS} items, "
            f"one module fixture each, {WORKERS} workers, one job capped 4",
            "",
            table(header, rows, "l"),
            "",
            "Durations seeded into pytest's cache (a fixed random draw, 0.01-1 s per item), so "
            "the duration order interleaves the modules; the tests themselves do nothing.",
        ]
    )
