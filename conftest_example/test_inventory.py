"""Inventory sits behind a rate limiter that answers 429 above 2 requests at once.

Nobody wrote that limit down, so the job is adaptive: it starts at 8 tests and
requests in flight, halves on each burst of 429s, grows back by one after a run of
successes, and the client retries the 429s of these GETs. Every test sees the
final 200; the ``dynpool http`` summary shows the 429s and the cap it settled on.
"""

from __future__ import annotations

import httpx
import pytest

from .conftest import STOCK

pytestmark = pytest.mark.dynpool(max_concurrency=8, job="inventory", adaptive=True)


@pytest.mark.parametrize("sku", sorted(STOCK))
def test_stock_level(dynpool_client: httpx.Client, sku: int) -> None:
    response = dynpool_client.get(f"/inventory/{sku}")
    assert response.status_code == 200
    assert response.json() == {"sku": sku, "in_stock": STOCK[sku]}


def test_unknown_sku_is_404(dynpool_client: httpx.Client) -> None:
    response = dynpool_client.get("/inventory/999")
    assert response.status_code == 404
