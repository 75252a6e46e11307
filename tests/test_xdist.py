"""Under ``pytest -n 2``: dynpool runs on every xdist worker and caps hold across workers.

Caps are proven at a real HTTP server that runs in this (the outer) test process and
counts requests in flight per endpoint across the worker processes, with gates: a
request to an endpoint is held until the endpoint has had ``cap`` requests in flight
at once, then the gate stays open for good. So a peak reaches its cap only if cap
items of the job ran at once across the workers, and a peak above it is a broken cap.
Gate waits end after 30 s as a safety net only (the peak then stays short of the cap
and the test fails). No clock is asserted.

Why the figures are guaranteed with ``-n 2 --dynpool-workers 4`` (8 threads), with no
``--dynpool-backend`` (the run's own SQLite store holds the caps): every job's items are
dealt evenly over the workers, and each worker holds each job's whole cap. The job capped
8 has the longest drain on each worker (28 items / 8), so each worker fills its 4 threads
with it at once: 8 in flight, which the store allows and which opens its gate. Closed gates
of the jobs capped 1, 2 and 3 hold at most 0 + 1 + 2 = 3 threads over both workers, so a
worker keeps a free thread and, being work-conserving, starts a held job's item (each
worker has items of each job) once the store grants its slot, which opens the gate.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator

import pytest

from .gated_server import GatedCounter, gated_server

pytest.importorskip("xdist")

CAPS = {"cap8": 8, "cap1": 1, "cap2": 2, "cap3": 3}
ITEMS = {"cap8": 56, "cap1": 4, "cap2": 6, "cap3": 9}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedCounter]:
    with gated_server(monkeypatch) as counter:
        yield counter


CAPPED_SUITE = """
import os
import urllib.request

import pytest


def call(endpoint):
    with urllib.request.urlopen(os.environ["GATED_URL"] + "/" + endpoint, timeout=120) as r:
        assert r.status == 200

# Collected first: ties go to it (see the outer test's docstring).
@pytest.mark.dynpool(8, job="cap8")
@pytest.mark.parametrize("n", range(56))
def test_cap8(n):
    call("cap8")

@pytest.mark.dynpool(1, job="cap1")
@pytest.mark.parametrize("n", range(4))
def test_cap1(n):
    call("cap1")

@pytest.mark.dynpool(2, job="cap2")
@pytest.mark.parametrize("n", range(6))
def test_cap2(n):
    call("cap2")

@pytest.mark.dynpool(3, job="cap3")
@pytest.mark.parametrize("n", range(9))
def test_cap3(n):
    call("cap3")

@pytest.mark.parametrize("n", range(3))
def test_unmarked(n):
    call("unmarked")
"""


def _junit_ids(path: str) -> Counter[str]:
    cases = ET.parse(path).getroot().iter("testcase")
    return Counter(f"{case.get('classname')}::{case.get('name')}" for case in cases)


def test_caps_hold_across_two_workers_and_every_test_is_reported_once(
    pytester: pytest.Pytester, server: GatedCounter
) -> None:
    server.caps = dict(CAPS)
    pytester.makepyfile(test_capped=CAPPED_SUITE)
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dynpool-workers",
        "4",
        # The gates need each job filled to its cap before the pool spreads (count order);
        # a first run by duration starts one test of each job first.
        "--dynpool-order",
        "count",
        "-rA",
        "--junitxml=junit.xml",
        "-p",
        "no:randomly",
        timeout=300,
    )
    total = sum(ITEMS.values()) + 3
    result.assert_outcomes(passed=total)
    assert server.timeouts == []
    assert {name: server.peak[name] for name in CAPS} == CAPS
    assert server.total_peak == 8  # 2 processes x 4 threads, and never more
    assert server.peak["unmarked"] <= 2  # one at a time per worker, as under xdist
    # Exactly once in the terminal's short summary and in junitxml.
    passed = Counter(line.split()[1] for line in result.outlines if line.startswith("PASSED "))
    assert len(passed) == total
    assert set(passed.values()) == {1}
    junit = _junit_ids(str(pytester.path / "junit.xml"))
    assert len(junit) == total
    assert set(junit.values()) == {1}
    # Each job's peak in the summary is the one the server counted (the store's).
    header = next(line for line in result.outlines if line.startswith("job ") and "peak" in line)
    peak_column = header.split().index("peak")
    for name in CAPS:
        row = next(line.split() for line in result.outlines if line.startswith(f"{name} "))
        assert int(row[peak_column]) == server.peak[name], (name, row)
    # One summary for the whole run, gathered from both workers.
    result.stdout.fnmatch_lines(
        [
            "*= dynpool =*",
            "cap8 * 8 * 56 * 56 * 0 * 0 * 8 *",
            "cap3 * 3 * 9 * 9 *",
            "pool: 8 workers*",
            "exclusive: 3 unmarked items ran alone",
            "xdist: 2 workers, pooled wall per worker: gw0 *, gw1 *",
        ]
    )


DIFFERENTIAL_SUITE = """
import pytest

@pytest.fixture(scope="module")
def resource():
    yield {"ready": True}

@pytest.fixture
def broken():
    raise RuntimeError("setup fails")

@pytest.mark.dynpool(2, job="a")
@pytest.mark.parametrize("n", range(8))
def test_a(n, resource):
    print("output of", n)
    assert resource["ready"] and n != 3

@pytest.mark.dynpool(1)
class TestB:
    def test_skip(self):
        pytest.skip("no")

    @pytest.mark.xfail(reason="known")
    def test_xfail(self):
        assert 0

    def test_setup_error(self, broken):
        pass

def test_unmarked_pass():
    pass

def test_unmarked_fail():
    assert 0
"""


def _outcomes(path: str) -> dict[str, str]:
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = sorted(child.tag for child in case if child.tag not in ("system-out", "system-err"))
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = ",".join(kinds) or "passed"
    return outcomes


# No marker at all: dynpool on, nothing pooled, so xdist schedules and runs as without it.
UNMARKED_SUITE = DIFFERENTIAL_SUITE.replace('@pytest.mark.dynpool(2, job="a")', "").replace(
    "@pytest.mark.dynpool(1)", ""
)


@pytest.mark.parametrize("suite", [DIFFERENTIAL_SUITE, UNMARKED_SUITE], ids=["marked", "unmarked"])
def test_outcomes_match_plain_xdist(pytester: pytest.Pytester, suite: str) -> None:
    assert "dynpool" not in UNMARKED_SUITE
    pytester.makepyfile(test_diff=suite)
    runs = {}
    for name, extra in (("on", ("--dynpool-workers", "3")), ("off", ("-p", "no:dynpool"))):
        result = pytester.runpytest_subprocess(
            "-n",
            "2",
            f"--junitxml={name}.xml",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            *extra,
            timeout=120,
        )
        runs[name] = (result.ret, _outcomes(str(pytester.path / f"{name}.xml")))
    assert runs["on"] == runs["off"]
    assert runs["on"][0] == 1
    assert len(runs["on"][1]) == 13


GROUP_SUITE = """
import os
import urllib.request

import pytest

def call(endpoint):
    with urllib.request.urlopen(os.environ["GATED_URL"] + "/" + endpoint, timeout=120) as r:
        assert r.status == 200

@pytest.mark.xdist_group("db")
@pytest.mark.parametrize("n", range(6))
def test_db(n):
    call("group-db")

@pytest.mark.xdist_group(name="queue")
@pytest.mark.parametrize("n", range(6))
def test_queue(n):
    call("group-queue")

@pytest.mark.dynpool(3, job="free")
@pytest.mark.parametrize("n", range(9))
def test_free(n):
    call("cap3")
"""


def test_xdist_groups_become_jobs_of_cap_one(
    pytester: pytest.Pytester, server: GatedCounter
) -> None:
    server.caps = {"cap3": 3}
    pytester.makepyfile(test_groups=GROUP_SUITE)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dynpool-workers", "3", "--dynpool-xdist-groups", timeout=120
    )
    result.assert_outcomes(passed=21)
    assert server.peak["group-db"] == 1
    assert server.peak["group-queue"] == 1
    assert server.peak["cap3"] == 3
    for row in ("xdist_group=db * 1 * 6 * 6 *", "xdist_group=queue * 1 * 6 * 6 *"):
        result.stdout.fnmatch_lines([row])


def test_other_dist_modes_leave_dynpool_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=DIFFERENTIAL_SUITE)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadfile", timeout=120)
    result.stdout.fnmatch_lines(["dynpool: off (--dist loadfile: *)"])
    result.stdout.no_fnmatch_line("*= dynpool =*")


HTTP_SUITE = """
import pytest

@pytest.mark.dynpool(4, job="api")
@pytest.mark.parametrize("n", range(12))
def test_api(n, dynpool_client):
    assert dynpool_client.get("/api").status_code == 200
"""


def test_http_statistics_are_merged_over_workers(
    pytester: pytest.Pytester, server: GatedCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.caps = {"api": 4}  # the gate opens at 4 in flight: both workers' shares of 2
    monkeypatch.setenv("DYNPOOL_BASE_URL", os.environ["GATED_URL"])
    pytester.makepyfile(test_http=HTTP_SUITE)
    # Balance fixed: the test is about both workers' statistics, and with stealing one
    # worker may run every item (it did on xdist 3.6, a busy machine).
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dynpool-workers", "4", "--dynpool-xdist-balance=fixed", timeout=120
    )
    result.assert_outcomes(passed=12)
    assert server.peak["api"] == 4
    assert server.timeouts == []
    result.stdout.fnmatch_lines(
        [
            "*= dynpool http =*",
            "job * requests * 2xx *",
            "api * 12 * 12 * 0 * 0 * 0 * 0 *",
            "(all 2 xdist workers*",
        ]
    )


STORE_SUITE = """
import os
import urllib.request

import pytest

@pytest.mark.dynpool(3, job="cap3")
@pytest.mark.parametrize("n", range(9))
def test_store(n):
    with urllib.request.urlopen(os.environ["GATED_URL"] + "/cap3", timeout=120) as r:
        assert r.status == 200
"""


def test_with_a_shared_store_every_worker_has_the_whole_cap_and_the_store_holds_it(
    pytester: pytest.Pytester, server: GatedCounter
) -> None:
    # A store the user chose replaces the run's own: each worker gets cap 3, the store
    # allows 3 in all.
    server.caps = {"cap3": 3}
    pytester.makepyfile(test_store=STORE_SUITE)
    store = pytester.path / "limits.db"
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dynpool-workers", "4", f"--dynpool-backend=sqlite:///{store}", timeout=120
    )
    result.assert_outcomes(passed=9)
    assert server.timeouts == []
    assert server.peak["cap3"] == 3
    assert store.exists()  # the workers used the store


ADAPTIVE_SUITE = """
import os
import threading
import urllib.request

import pytest

from pytest_dynpool.limits_store import GATE_KEY


def meet():
    # Both tests wait here until both are in flight (the server's gate of cap 2).
    with urllib.request.urlopen(os.environ["GATED_URL"] + "/meet", timeout=120) as r:
        assert r.status == 200


@pytest.mark.dynpool(4, job="api", adaptive=True)
@pytest.mark.parametrize("n", range(2))
def test_api(n, dynpool_client, request):
    with open(f"worker-{n}", "w") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"])
    if n == 0:
        # One 429 halves 4 -> 2 (the client's retry then gets a 200).
        assert dynpool_client.get("/overload").status_code == 200
        meet()
        return
    meet()  # the other worker has seen its 429 by now
    gate = request.config.stash[GATE_KEY]
    assert gate.read_state("api").effective_cap == 2
    threads = [threading.Thread(target=dynpool_client.get, args=("/burst",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
"""


def test_a_429_seen_by_one_worker_lowers_the_adaptive_cap_of_the_other(
    pytester: pytest.Pytester, server: GatedCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No --dynpool-backend: the run's own SQLite store carries the effective cap.
    server.caps = {"meet": 2, "burst": 2}
    server.statuses = {"overload": 429}
    monkeypatch.setenv("DYNPOOL_BASE_URL", os.environ["GATED_URL"])
    pytester.makepyfile(test_adaptive=ADAPTIVE_SUITE)
    # Balance fixed: each worker keeps the item it was sent (with stealing, a worker with
    # free threads may run both, and the test is about two workers).
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dynpool-workers",
        "4",
        "-p",
        "no:randomly",
        "--dynpool-xdist-balance=fixed",
        timeout=120,
    )
    result.assert_outcomes(passed=2)
    workers = {(pytester.path / f"worker-{n}").read_text() for n in range(2)}
    assert len(workers) == 2  # the 429 and the burst were in different workers
    assert server.timeouts == []
    # The second worker's own cap is still 4; it followed the shared 2.
    assert server.peak["burst"] == 2


RATE_SUITE = """
import pytest

@pytest.mark.dynpool(2, rate="1/m")
@pytest.mark.parametrize("n", range(6))
def test_rated(n):
    assert False, "fails at once: two failures stop the run"
"""


def test_a_rate_holds_across_workers(pytester: pytest.Pytester) -> None:
    # Burst 2 (the cap), then one start a minute: over both workers exactly two items
    # can start before --maxfail=2 stops every worker. Per-worker rates would start four.
    pytester.makepyfile(test_rate=RATE_SUITE)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dynpool-workers", "2", "--maxfail=2", "-p", "no:randomly", timeout=120
    )
    result.assert_outcomes(failed=2)
    assert result.ret == pytest.ExitCode.INTERRUPTED
