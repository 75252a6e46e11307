"""Caps at a real HTTP server, and the pooled phase's wall time against its lower bound.

Generates a suite whose tests each make one request to a local threaded HTTP
server with a fixed latency per endpoint. Jobs are capped 1, 2, 3 and 8 on 8
workers; a few unmarked tests check that nothing else is in flight while they
run. The server counts requests in flight per endpoint and across all of them.
Prints a markdown table: the peak per endpoint seen at the server against the
cap, the pool's peak, and wall/LB of the pooled phase from the dynpool summary.

    python benchmarks/caps.py [--latency 0.05] [--scale 1] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CAPS = {"one": 1, "two": 2, "three": 3, "eight": 8}
WORKERS = 8

CONFTEST = """
import json
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

LATENCY = float(os.environ["CAPS_LATENCY"])
_lock = threading.Lock()
in_flight = {}
peaks = {}
state = {"total": 0, "peak_total": 0, "overlap_seen_by_unmarked": 0}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        endpoint = self.path.strip("/")
        with _lock:
            in_flight[endpoint] = in_flight.get(endpoint, 0) + 1
            peaks[endpoint] = max(peaks.get(endpoint, 0), in_flight[endpoint])
            state["total"] += 1
            state["peak_total"] = max(state["peak_total"], state["total"])
        time.sleep(LATENCY)
        with _lock:
            in_flight[endpoint] -= 1
            state["total"] -= 1
        body = endpoint.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    with open(os.environ["CAPS_RESULT"], "w") as out:
        json.dump({"peaks": peaks, "state": state}, out)


@pytest.fixture
def get(server):
    def call(endpoint):
        with urllib.request.urlopen(f"{server}/{endpoint}", timeout=30) as response:
            return response.read().decode()
    return call


@pytest.fixture
def alone():
    def check():
        with _lock:
            others = state["total"]
        state["overlap_seen_by_unmarked"] += others
    return check
"""

TEST_FILE = """
import pytest

@pytest.mark.dynpool({cap})
@pytest.mark.parametrize("n", range({items}))
def test_{name}(n, get):
    assert get("{name}") == "{name}"
"""

UNMARKED = """
def test_unmarked_alone(get, alone):
    alone()
    assert get("unmarked") == "unmarked"
    alone()
"""


def write_suite(root: Path, scale: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "conftest.py").write_text(CONFTEST)
    for name, cap in CAPS.items():
        # Equal drain time per job (items / cap), so that no job alone bounds the run.
        items = 10 * cap * scale
        source = TEST_FILE.format(name=name, cap=cap, items=items)
        (root / f"test_{name}.py").write_text(textwrap.dedent(source))
    (root / "test_unmarked.py").write_text(textwrap.dedent(UNMARKED))


def run(latency: float, scale: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_suite(root, scale)
        result_file = root / "result.json"
        env = {"CAPS_LATENCY": str(latency), "CAPS_RESULT": str(result_file)}
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--dynpool-workers",
            str(WORKERS),
            str(root),
        ]
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=root,
            check=False,
            env={**os.environ, **env},
        )
        if completed.returncode != 0:
            sys.exit(
                f"benchmark suite failed:\n{completed.stdout[-3000:]}{completed.stderr[-2000:]}"
            )
        figures: dict[str, object] = json.loads(result_file.read_text())
        pool = re.search(
            r"wall ([\d.]+)s, lower bound ([\d.]+)s, wall/LB ([\d.]+)", completed.stdout
        )
        if pool is None:
            sys.exit(f"no dynpool pool line in the output:\n{completed.stdout[-3000:]}")
        figures["wall"], figures["lb"], figures["ratio"] = map(float, pool.groups())
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--scale", type=int, default=1, help="multiplies every job's size")
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args()
    latency, scale = (0.005, 1) if args.smoke else (args.latency, args.scale)
    figures = run(latency, scale)
    peaks = figures["peaks"]
    state = figures["state"]
    assert isinstance(peaks, dict)
    assert isinstance(state, dict)
    print(f"caps at the server: {WORKERS} workers, {latency * 1000:.0f} ms per request\n")
    print("| endpoint | cap | items | peak in flight at the server |")
    print("|---|---:|---:|---:|")
    for name, cap in CAPS.items():
        print(f"| {name} | {cap} | {10 * cap * scale} | {peaks.get(name, 0)} |")
    print(f"| (all endpoints) | pool {WORKERS} | | {state['peak_total']} |")
    print(f"\nunmarked tests saw {state['overlap_seen_by_unmarked']} other requests in flight")
    print(
        f"pooled phase: wall {figures['wall']:.2f}s, lower bound {figures['lb']:.2f}s, "
        f"wall/LB {figures['ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
