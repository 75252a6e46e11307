"""The orders service takes two requests at once; the module shares the "orders" job."""

from __future__ import annotations

import httpx
import pytest

from .conftest import LoadMonitor

pytestmark = pytest.mark.dynpool(2, job="orders")


@pytest.mark.parametrize(
    ("order_id", "status", "total_cents"),
    [(101, "shipped", 2498), (102, "pending", 1299), (103, "cancelled", 0), (104, "shipped", 999)],
)
def test_order_status_and_total(
    api: httpx.Client, order_id: int, status: str, total_cents: int
) -> None:
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200
    order = response.json()
    assert (order["id"], order["status"], order["total_cents"]) == (order_id, status, total_cents)


def test_shipped_order_lists_its_items(api: httpx.Client) -> None:
    response = api.get("/orders/101")
    assert response.status_code == 200
    assert response.json()["items"] == ["Dune", "Solaris"]


def test_unknown_order_is_404(api: httpx.Client) -> None:
    response = api.get("/orders/999")
    assert response.status_code == 404
    assert response.json() == {"error": "no order 999"}


def test_orders_never_exceeded_their_capacity(api: httpx.Client, load_monitor: LoadMonitor) -> None:
    assert api.get("/orders/102").status_code == 200
    orders = load_monitor.loads["/orders"]
    assert 1 <= orders.peak <= orders.capacity
    assert orders.rejected == 0
