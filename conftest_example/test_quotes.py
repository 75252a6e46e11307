"""Quotes are fast, but the partner's contract allows 40 requests a second.

``rate="40/s"`` spaces out the job's test starts and its requests alike (a token
bucket with a burst of the cap, 4); the cap keeps at most 4 in flight.
"""

from __future__ import annotations

import httpx
import pytest

from pytest_dynpool import JobState

SYMBOLS = ["ACME", "BOLT", "CORE", "DYNA", "ECHO", "FLUX", "GRID", "HALO", "IRIS", "JADE"]


@pytest.mark.dynpool(4, job="quotes", rate="40/s")
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_quote_has_a_price(dynpool_client: httpx.Client, symbol: str) -> None:
    response = dynpool_client.get(f"/quotes/{symbol}")
    assert response.status_code == 200
    assert response.json() == {"symbol": symbol, "price_cents": sum(map(ord, symbol)) * 10}


@pytest.mark.dynpool(4, job="quotes", rate="40/s")
def test_the_job_is_what_the_marker_says(dynpool_job: JobState) -> None:
    assert (dynpool_job.name, dynpool_job.cap, str(dynpool_job.rate)) == ("quotes", 4, "40/s")
    assert dynpool_job.adaptive is None  # not adaptive: the server's answers come untouched
