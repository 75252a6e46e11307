"""Under ``pytest -n 2``: a worker whose own items have all started runs another's.

The partition is each worker's preference; an item is claimed in the run's store
as it starts, so it runs in exactly one worker (``xdist_balance``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("xdist")

# Six items of one job: the partition gives each worker three. The first worker to start
# an item is the "blocker": every item that starts there waits until four items have ended
# on the other worker, which owns only three -- so it must take one from the blocker's
# share. Without stealing the blocked items give up after GATE_SECONDS and fail.
STEAL_SUITE = """
import os
import time
from pathlib import Path

import pytest

ROOT = Path(os.environ["BALANCE_DIR"])
GATE_SECONDS = 30.0

def first_worker(me):
    try:
        fd = os.open(ROOT / "first", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return (ROOT / "first").read_text()  # empty until written: the caller reads again
    os.write(fd, me.encode())
    os.close(fd)
    return me

def ended_elsewhere():
    return len(list(ROOT.glob("ended-*")))

@pytest.mark.dynpool(8, job="j")
@pytest.mark.parametrize("n", range(6))
def test_item(n):
    me = os.environ["PYTEST_XDIST_WORKER"]
    fd = os.open(ROOT / f"ran-{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # exactly once
    os.write(fd, me.encode())
    os.close(fd)
    blocker = first_worker(me)
    while not blocker:
        blocker = (ROOT / "first").read_text()
    if me == blocker:
        deadline = time.monotonic() + GATE_SECONDS
        while ended_elsewhere() < 4:
            if time.monotonic() > deadline:
                pytest.fail("the other worker never took an item of this worker's share")
            time.sleep(0.02)
    else:
        (ROOT / f"ended-{n}").write_text(me)
"""


SESSION_CONFTEST = """
import os
from pathlib import Path

import pytest

@pytest.fixture(scope="session", autouse=True)
def once_per_worker():
    path = Path(os.environ["BALANCE_DIR"]) / f"session-{os.environ['PYTEST_XDIST_WORKER']}"
    with path.open("a") as log:
        log.write("setup\\n")
    yield
    with path.open("a") as log:
        log.write("teardown\\n")
"""


def _junit_cases(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    return [f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")]


def test_a_worker_runs_an_item_of_another_workers_share(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = pytester.path / "shared"
    shared.mkdir()
    monkeypatch.setenv("BALANCE_DIR", str(shared))
    pytester.makepyfile(test_steal=STEAL_SUITE)
    pytester.makeconftest(SESSION_CONFTEST)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dynpool-workers", "2", "-v", "--junitxml=out.xml", timeout=120
    )
    result.assert_outcomes(passed=6)
    ran = {path.name: path.read_text() for path in shared.glob("ran-*")}
    assert sorted(ran) == [f"ran-{n}" for n in range(6)]
    blocker = (shared / "first").read_text()
    other = [n for n, worker in ran.items() if worker != blocker]
    assert len(other) >= 4  # more than its own share of three: it stole
    passed = [line for line in result.outlines if " PASSED " in line]
    assert len(passed) == 6
    assert sorted(_junit_cases(pytester.path / "out.xml")) == sorted(
        f"test_steal::test_item[{n}]" for n in range(6)
    )
    # Session fixtures are per worker, once, as under plain xdist: not torn down between a
    # worker's own items and the ones it stole.
    sessions = sorted(shared.glob("session-*"))
    assert len(sessions) == 2
    for log in sessions:
        assert log.read_text().split() == ["setup", "teardown"]


def test_with_balance_fixed_items_stay_where_they_were_sent(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control: the same suite without stealing cannot pass (the gate gives up).
    shared = pytester.path / "shared"
    shared.mkdir()
    monkeypatch.setenv("BALANCE_DIR", str(shared))
    pytester.makepyfile(test_steal=STEAL_SUITE.replace("GATE_SECONDS = 30.0", "GATE_SECONDS = 2.0"))
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dynpool-workers", "2", "--dynpool-xdist-balance=fixed", timeout=120
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, outcomes
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 6
    ran = {path.name: path.read_text() for path in shared.glob("ran-*")}
    blocker = (shared / "first").read_text()
    assert sum(worker != blocker for worker in ran.values()) == 3


def test_a_bad_balance_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.dynpool(2)\ndef test_x(): pass\n")
    result = pytester.runpytest_subprocess("-n", "2", "--dynpool-xdist-balance=always")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--dynpool-xdist-balance*expected steal or fixed*'always'*"])


def test_steal_order_takes_each_other_share_from_its_far_end_interleaved() -> None:
    from pytest_dynpool.xdist_balance import steal_order

    parts = {"gw0": [0, 2, 4], "gw1": [1, 3, 5, 7], "gw2": [6, 8]}
    assert steal_order("gw0", parts, range(10)) == [7, 8, 5, 6, 3, 1]
    assert steal_order("gw1", parts, {0, 2, 8}) == [2, 8, 0]
    assert steal_order("gw0", {"gw0": [1]}, range(3)) == []


FIXTURE_SUITE = """
import os
from pathlib import Path

import pytest

def log(line):
    path = Path(os.environ["BALANCE_DIR"]) / f"{{os.environ['PYTEST_XDIST_WORKER']}}-{{__name__}}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)

@pytest.fixture(scope="module")
def resource():
    log("setup")
    yield
    log("teardown")

@pytest.mark.dynpool(4, job="{job}")
@pytest.mark.parametrize("n", range(7))
def test_m(n, resource):
    log(f"test {{n}}")
"""


def test_module_fixtures_wrap_every_item_a_worker_runs_stolen_or_not(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = pytester.path / "shared"
    shared.mkdir()
    monkeypatch.setenv("BALANCE_DIR", str(shared))
    modules = ("a", "b", "c")
    for name in modules:
        pytester.makepyfile(**{f"test_{name}": FIXTURE_SUITE.format(job=name)})
    # One log per worker and module: in each, every test line lies between a setup and
    # its teardown, and every setup is torn down, whichever items the worker stole.
    result = pytester.runpytest_subprocess("-n", "2", "--dynpool-workers", "3", timeout=120)
    result.assert_outcomes(passed=21)
    for log in shared.iterdir():
        depth = 0
        for line in log.read_text().splitlines():
            if line == "setup":
                depth += 1
            elif line == "teardown":
                depth -= 1
                assert depth >= 0, log.read_text()
            else:
                assert depth > 0, log.read_text()  # a test ran with its module set up
        assert depth == 0, log.read_text()  # every setup was torn down in its worker


# Eight items, four per share. The blocker's items wait until five items have ended on
# other workers. The thief runs its own four, then steals two: at its fifth start that item
# waits for the sixth, which calls os._exit. The sixth is blamed (it started last); the
# fifth, stolen and in flight, must run again on the replacement -- the fifth item ended
# elsewhere that releases the blocker. A lost item leaves the blocker to fail at its gate.
CRASH_SUITE = (
    (
        STEAL_SUITE.replace('parametrize("n", range(6))', 'parametrize("n", range(8))')
        # An item in flight when its worker died starts again: not an exactly-once file here.
        .replace("os.O_CREAT | os.O_EXCL)  # exactly once", "os.O_CREAT | os.O_APPEND)")
    )
    .replace("ended_elsewhere() < 4", "ended_elsewhere() < 5")
    .replace(
        """    else:
        (ROOT / f"ended-{n}").write_text(me)""",
        """    else:
        start = 1
        while True:
            try:
                os.close(os.open(ROOT / f"start-{me}-{start}", os.O_CREAT | os.O_EXCL))
                break
            except FileExistsError:
                start += 1
        if start == 6:
            os._exit(1)
        if start == 5:
            deadline = time.monotonic() + GATE_SECONDS
            while not (ROOT / f"start-{me}-6").exists():
                if time.monotonic() > deadline:
                    pytest.fail("the thief never started a sixth item")
                time.sleep(0.02)
            time.sleep(GATE_SECONDS)  # in flight when its worker dies
        (ROOT / f"ended-{n}").write_text(me)""",
    )
)


def test_a_crashed_thief_loses_no_item(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "os._exit" in CRASH_SUITE
    assert "range(8)" in CRASH_SUITE
    shared = pytester.path / "shared"
    shared.mkdir()
    monkeypatch.setenv("BALANCE_DIR", str(shared))
    pytester.makepyfile(test_steal=CRASH_SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--dynpool-workers", "2", "-v", timeout=120)
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*replacing crashed worker gw*", "*crashed while running*"])
    blocker = (shared / "first").read_text()
    thief = next(path.name[len("start-") :].rsplit("-", 1)[0] for path in shared.glob("start-*"))
    ended = {path.name: path.read_text() for path in shared.glob("ended-*")}
    assert len(ended) == 5
    assert {worker for worker in ended.values()} - {thief} - {blocker}  # the replacement ran one
