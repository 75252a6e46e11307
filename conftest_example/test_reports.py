"""Reports are slow (200 ms) and the service renders three at once: async tests, cap 3.

Each async test runs in its own event loop on a pool worker. One test fetches
four years at once with ``asyncio.gather``: the job's cap of 3 holds for the
requests of all its tests together, so the fourth waits at the client.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.dynpool(3, job="reports")]


@pytest.mark.parametrize("year", [2021, 2022, 2023, 2024])
async def test_report_pages(dynpool_async_client: httpx.AsyncClient, year: int) -> None:
    response = await dynpool_async_client.get(f"/reports/{year}")
    assert response.status_code == 200
    assert response.json() == {"year": year, "pages": year % 100 + 10}


async def test_four_years_at_once(dynpool_async_client: httpx.AsyncClient) -> None:
    years = [2018, 2019, 2020, 2021]
    responses = await asyncio.gather(
        *(dynpool_async_client.get(f"/reports/{year}") for year in years)
    )
    assert [response.status_code for response in responses] == [200] * 4
    assert [response.json()["year"] for response in responses] == years
