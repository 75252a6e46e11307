"""The slot gate seam: a gate from ``pytest_dynpool_slot_gate`` is asked before each item."""

from __future__ import annotations

import pytest

GATE_CONFTEST = """
import threading
import pytest

class Gate:
    def __init__(self):
        self.lock = threading.Lock()
        self.refused = set()
        self.held = {}
        self.peak = {}
        self.granted = 0
        self.released = 0

    def try_acquire(self, job, cap):
        with self.lock:
            if job not in self.refused:
                self.refused.add(job)  # refuse each job once: it is deferred, others go on
                return 0.01
            self.held[job] = self.held.get(job, 0) + 1
            self.peak[job] = max(self.peak.get(job, 0), self.held[job])
            self.granted += 1
            return None

    def release(self, job):
        with self.lock:
            self.held[job] -= 1
            self.released += 1

GATE = Gate()

def pytest_dynpool_slot_gate(config):
    return GATE

def pytest_unconfigure(config):
    with open("gate.txt", "w") as out:
        peak = max(GATE.peak.values())
        out.write(f"{GATE.granted} {GATE.released} {peak} {sorted(GATE.refused)}")
"""


def test_the_gate_is_asked_for_every_item_and_every_slot_goes_back(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(GATE_CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dynpool(2, job="a")
        @pytest.mark.parametrize("n", range(5))
        def test_a(n):
            pass

        @pytest.mark.dynpool(1, job="b")
        @pytest.mark.parametrize("n", range(3))
        def test_b(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=8)
    granted, released, peak, refused = (pytester.path / "gate.txt").read_text().split(" ", 3)
    assert (granted, released, refused) == ("8", "8", "['a', 'b']")
    assert int(peak) <= 2
