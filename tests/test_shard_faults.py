"""Must show: a killed shard blocks nobody for long; a lost store stops the run cleanly.

Every process is bounded in time (``shards.SHARD_SECONDS``); nothing here
asserts a duration. The seconds a killed shard's slots took to come back are
printed (run with ``-s``) and reported in BENCHMARKS.md.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from benchmarks.server import LatencyServer
from benchmarks.shards import CAPS, start_shards, write_suite
from pytest_dynpool.backends import open_backend

from .redis_server import free_port, started_redis
from .test_shards import SHARED, backend_url, finish

WAIT = 120.0  # bounds a wait for the server to see something; never reached when all is well
LEASE = 2.0


@pytest.mark.parametrize("kind", SHARED)
def test_a_killed_shard_gives_its_slots_back_within_its_lease(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = backend_url(kind, request, tmp_path, f"?lease={LEASE:g}")
    namespace = f"kill-{uuid.uuid4().hex[:8]}"
    suite = write_suite(tmp_path / "suite")
    with LatencyServer(0.02, gate_seconds=WAIT) as server:
        # The victim's cap2 requests are held by the server: it holds both cap2 slots.
        (victim,) = start_shards(
            suite, server.port, url, namespace, only=[0], extra_env={"HOLD_JOB": "cap2"}
        )
        assert server.wait_until_held(CAPS["cap2"], WAIT), victim.output[-3000:]
        others = start_shards(suite, server.port, url, namespace, only=[1, 2, 3])
        # Kill once every other request has arrived: the other shards then wait for
        # nothing but cap2, so their first cap2 request marks the slots' return.
        others_done = suite.total - suite.items_per_job
        assert server.wait_until(
            lambda seen: (
                sum(len(t) for e, t in seen.arrivals.items() if e != "cap2") == others_done
            ),
            WAIT,
        )
        store = open_backend(url, namespace)
        assert store.in_flight("cap2") == CAPS["cap2"]
        victim.kill()
        killed_at = time.monotonic()
        server.let_held_go()  # the dead shard's requests end; its leases live on in the store
        assert finish(others) == [0, 0, 0]
        traffic = server.take_traffic()
    assert traffic.peaks["cap2"] == CAPS["cap2"]  # never above the cap, before or after
    assert {job: traffic.peaks[job] <= cap for job, cap in CAPS.items()} == dict.fromkeys(
        CAPS, True
    )
    assert store.in_flight("cap2") == 0  # every slot came back
    store.close()
    after_kill = [t - killed_at for t in traffic.arrivals["cap2"] if t > killed_at]
    print(
        f"\n{kind}: the killed shard's cap2 slots came back {min(after_kill):.2f} s after "
        f"SIGKILL (lease {LEASE:g} s)"
    )


def test_redis_stopped_mid_run_stops_dispatch_with_a_clear_error(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    redis = started_redis(redis_dir)
    suite = write_suite(tmp_path / "suite")
    try:
        with LatencyServer(0.02, gate_seconds=WAIT) as server:
            (shard,) = start_shards(
                suite,
                server.port,
                redis.url,
                "stopped",
                shards=1,
                only=[0],
                extra_env={"HOLD_JOB": "cap1"},
            )
            assert server.wait_until_held(1, WAIT), shard.output[-3000:]
            redis.stop()  # while a cap1 test holds its slot and the other cap1 tests wait
            server.let_held_go()
            code = shard.wait()
    finally:
        redis.stop()
    output = shard.output
    assert code == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert f"Interrupted: dynpool: the limits store failed: {redis.url}" in output
    assert "dispatch stopped (fail closed)" in output
    assert "not run because the store failed:" in output
    assert "test_cap1.py::test_request[" in output.split("not run because the store failed:")[1]
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:{port}/0", "cannot reach the Redis limits store"),
        ("sqlite://{tmp}/missing-dir/limits.db", "cannot open the SQLite limits store"),
    ],
)
def test_a_store_unreachable_at_start_is_a_usage_error(
    url: str, message: str, pytester: pytest.Pytester
) -> None:
    url = url.format(port=free_port(), tmp=pytester.path)
    pytester.makepyfile("import pytest\n\n@pytest.mark.dynpool(2)\ndef test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--dynpool-backend", url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --dynpool-backend: *{url}: {message}*"])
    assert "Traceback" not in result.stderr.str()


def test_an_unknown_store_is_a_usage_error_before_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--dynpool-backend", "postgres://db/x", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --dynpool-backend * 'postgres://db/x' names no known*"])


def test_flag_beats_environment_beats_ini_and_the_summary_names_the_store(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(
        "[pytest]\ndynpool_backend = postgres://never/used\ndynpool_namespace = from-ini\n"
    )
    pytester.makepyfile("import pytest\n\n@pytest.mark.dynpool(2)\ndef test_one():\n    pass\n")
    env_db = pytester.path / "env.db"
    monkeypatch.setenv("DYNPOOL_BACKEND", f"sqlite://{env_db}")
    result = pytester.runpytest_subprocess()
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            f"limits store: sqlite://{env_db}, namespace 'from-ini', leases of 10 s",
            "  job * peak here  peak in store (all processes)",
            "  test_flag_beats_environment_beats_ini_and_the_summary_names_the_store.py::test_one "
            "* 1 * 1",
        ]
    )
    flag_db = pytester.path / "flag.db"
    result = pytester.runpytest_subprocess(
        "--dynpool-backend", f"sqlite://{flag_db}", "--dynpool-namespace", "from-flag"
    )
    result.stdout.fnmatch_lines(
        [
            f"dynpool: limits store sqlite://{flag_db}, namespace 'from-flag'",
            f"limits store: sqlite://{flag_db}, namespace 'from-flag'*",
        ]
    )


def test_the_memory_default_opens_nothing_and_says_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.dynpool(2)\ndef test_one():\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == 0
    assert "limits store" not in result.stdout.str()


GATED_SUITE = """
import os, pathlib, time

import pytest

pytestmark = pytest.mark.dynpool(2, job="api")
HERE = pathlib.Path(__file__).parent


@pytest.mark.parametrize("n", range(6))
def test_api(n):
    if n == 0:
        (HERE / "started").write_text("")
        for _ in range(1200):  # until the test lets it go; bounded at 60 s
            if (HERE / "go").exists():
                break
            time.sleep(0.05)
        assert os.environ.get("FAIL_FIRST") != "1"
"""


def store_after(url: str) -> tuple[int, int]:
    store = open_backend(url, "default")
    try:
        return store.in_flight("api"), store.peak("api")
    finally:
        store.close()


@pytest.mark.parametrize("how", ["-x", "ctrl-c", "timeout"])
def test_every_slot_comes_back_at_once_when_the_run_stops(
    how: str, pytester: pytest.Pytester
) -> None:
    import signal
    import subprocess
    import sys

    pytester.makepyfile(test_gated=GATED_SUITE)
    url = f"sqlite://{pytester.path / 'limits.db'}"
    args = [sys.executable, "-m", "pytest", "-p", "no:randomly", "--dynpool-backend", url]
    env = {**os.environ, "FAIL_FIRST": "1" if how == "-x" else "0"}
    env.pop("PYTEST_ADDOPTS", None)
    if how == "-x":
        args.append("-x")
    if how == "timeout":
        args += ["--dynpool-timeout", "1"]  # test_api[0] waits for "go", which never comes
    process = subprocess.Popen(
        args, cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        started = pytester.path / "started"
        for _ in range(1200):
            if started.exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        if how == "ctrl-c":
            process.send_signal(signal.SIGINT)
        if how != "timeout":
            (pytester.path / "go").write_text("")
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    text = output.decode(errors="replace")
    expected = {"-x": 1, "ctrl-c": 2, "timeout": 1}[how]
    assert process.returncode == expected, text[-3000:]
    in_flight, peak = store_after(url)
    assert in_flight == 0, text[-3000:]  # released at once, not left to expire
    assert 1 <= peak <= 2
