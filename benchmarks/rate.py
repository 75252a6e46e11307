"""A job's rate cap, seen at a local HTTP server: how long N fast requests at R/s take.

Generates a suite in a temporary directory: a threaded local server with an
endpoint that answers at once and records when each request arrived, and three
variants of one job that sends N requests through ``dynpool_client``:

- ``tests``: N tests of ``dynpool(2, job="fast", rate="R/s")``, one request each
  (the rate gates test starts and requests);
- ``parallel``: one test of the same job sending N requests from 8 threads
  (only the request side of the rate acts);
- ``no rate``: N tests of ``dynpool(2)`` without a rate, for comparison.

With a burst of the cap (2), the first 2 requests go at once and the others
one every 1/R s, so the span from the first to the last arrival should be
(N - 2) / R: 60 requests at 20/s take about 2.9 s. Prints a markdown table of
the span, that expectation, their ratio, and the most requests seen in any
one-second window (the bucket allows R + burst).

    python benchmarks/rate.py [--requests 60] [--rate 20] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BURST = 2  # the job's cap

CONFTEST = """
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ARRIVALS = []
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with _lock:
            ARRIVALS.append(time.monotonic())
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def dynpool_base_url():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    with open(os.environ["RATE_RESULT"], "w") as out:
        json.dump(ARRIVALS, out)
"""

TESTS = """
import pytest

@pytest.mark.dynpool({cap}, job="fast"{rate})
@pytest.mark.parametrize("n", range({requests}))
def test_one_request(dynpool_client, n):
    assert dynpool_client.get("/").status_code == 200
"""

PARALLEL = """
from concurrent.futures import ThreadPoolExecutor

import pytest

@pytest.mark.dynpool({cap}, job="fast"{rate})
def test_many_requests(dynpool_client):
    with ThreadPoolExecutor(8) as threads:
        codes = list(threads.map(lambda _: dynpool_client.get("/").status_code,
                                 range({requests})))
    assert codes == [200] * {requests}
"""


def run_variant(source: str, requests: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "conftest.py").write_text(CONFTEST)
        (root / "test_rate.py").write_text(source)
        result_file = root / "arrivals.json"
        env = {**os.environ, "RATE_RESULT": str(result_file)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["--dynpool-workers", "8"]
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"pytest failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr}")
        arrivals = sorted(json.loads(result_file.read_text()))
    if len(arrivals) != requests:
        sys.exit(f"expected {requests} requests at the server, saw {len(arrivals)}")
    return arrivals


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals in any window [t, t + 1 s) that starts at an arrival."""
    best = 0
    end = 0
    for start, first in enumerate(arrivals):
        while end < len(arrivals) and arrivals[end] < first + 1.0:
            end += 1
        best = max(best, end - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true", help="12 requests: CI checks it runs")
    args = parser.parse_args()
    requests = 12 if args.smoke else args.requests
    rate_text = f"{args.rate:g}/s"
    rated = f', rate="{rate_text}"'
    variants = {
        "tests": TESTS.format(cap=BURST, rate=rated, requests=requests),
        "parallel": PARALLEL.format(cap=BURST, rate=rated, requests=requests),
        "no rate": TESTS.format(cap=BURST, rate="", requests=requests),
    }
    expected = (requests - BURST) / args.rate
    print(f"{requests} requests of one job (cap {BURST}) at {rate_text}; expected span with the")
    print(f"rate: ({requests} - {BURST}) / {args.rate:g} = {expected:.2f} s")
    print()
    print(
        "| variant | requests | span at the server (s) | expected (s) | span/expected "
        f"| busiest 1 s window (bound {args.rate:g} + {BURST}) | run wall (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, source in variants.items():
        started = time.perf_counter()
        arrivals = run_variant(source, requests)
        wall = time.perf_counter() - started
        span = arrivals[-1] - arrivals[0]
        if name == "no rate":
            expectation, ratio = "-", "-"
        else:
            expectation, ratio = f"{expected:.2f}", f"{span / expected:.2f}"
        print(
            f"| {name} | {requests} | {span:.2f} | {expectation} | {ratio} | "
            f"{busiest_second(arrivals)} | {wall:.2f} |"
        )


if __name__ == "__main__":
    main()
