"""Search takes four requests at once; one order lookup here shares the "orders" job.

Both search functions hit the same endpoint, so they name one job: two functions
each marked dynpool(4) without job= would be two jobs, up to 8 searches at once.
"""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.dynpool(max_concurrency=4, job="search")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("dune", ["Dune", "Dune Messiah", "Children of Dune"]),
        ("messiah", ["Dune Messiah"]),
        ("foundation", ["Foundation", "Foundation and Empire", "Second Foundation"]),
        ("empire", ["Foundation and Empire"]),
        ("second", ["Second Foundation"]),
        ("hyperion", ["Hyperion", "The Fall of Hyperion"]),
        ("fall", ["The Fall of Hyperion"]),
        ("neuro", ["Neuromancer"]),
        ("solaris", ["Solaris"]),
        ("of", ["Children of Dune", "The Fall of Hyperion"]),
        ("and", ["Foundation and Empire"]),
        ("zzz", []),
    ],
)
def test_search_finds_titles(api: httpx.Client, query: str, expected: list[str]) -> None:
    response = api.get("/search", params={"q": query})
    assert response.status_code == 200
    assert response.json() == {"query": query, "count": len(expected), "results": expected}


@pytest.mark.dynpool(max_concurrency=4, job="search")
def test_search_needs_a_query(api: httpx.Client) -> None:
    response = api.get("/search", params={"q": " "})
    assert response.status_code == 400
    assert response.json() == {"error": "missing query parameter q"}


@pytest.mark.dynpool(2, job="orders")
def test_search_hit_can_be_ordered(api: httpx.Client) -> None:
    # Same job name, same cap as test_orders.py: one cap of 2 across both files.
    response = api.get("/orders/104")
    assert response.status_code == 200
    assert response.json()["items"] == ["Foundation"]
