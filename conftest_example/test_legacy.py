"""The legacy report service takes one request at a time: the whole class is one job, cap 1."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.dynpool(1)
class TestLegacyReports:
    def test_report_has_title(self, api: httpx.Client) -> None:
        response = api.get("/legacy/reports/1")
        assert response.status_code == 200
        assert response.json() == {"id": 1, "title": "Annual report 2019", "status": "archived"}

    @pytest.mark.parametrize(
        ("report_id", "title"),
        [(2, "Annual report 2020"), (3, "Audit 2021"), (4, "Migration plan")],
    )
    def test_every_report_is_archived(self, api: httpx.Client, report_id: int, title: str) -> None:
        response = api.get(f"/legacy/reports/{report_id}")
        assert response.status_code == 200
        report = response.json()
        assert (report["id"], report["title"], report["status"]) == (report_id, title, "archived")

    def test_missing_report_is_404(self, api: httpx.Client) -> None:
        response = api.get("/legacy/reports/99")
        assert response.status_code == 404
        assert response.json() == {"error": "no report 99"}

    def test_reports_come_back_as_json(self, api: httpx.Client) -> None:
        response = api.get("/legacy/reports/2")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"


# Unmarked tests run alone, one at a time, before the pool starts.


def test_health(api: httpx.Client) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_path_is_404(api: httpx.Client) -> None:
    assert api.get("/nowhere").status_code == 404
