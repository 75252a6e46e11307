"""The reports' options and ini keys: --dynpool-report, --dynpool-html, --dynpool-plan."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True)
class ReportSettings:
    """Where the reports go; None: not written."""

    json_path: Path | None
    html_path: Path | None
    plan_only: bool
    step_summary_path: Path | None

    @property
    def records(self) -> bool:
        """Whether the run must be recorded (some report is written from it)."""
        return self.json_path is not None or self.html_path is not None


def add_report_options(parser: pytest.Parser) -> None:
    """Register the report flags and their ini keys."""
    group = parser.getgroup("dynpool", "run marked tests on a shared, capped thread pool")
    group.addoption(
        "--dynpool-report",
        dest="dynpool_report",
        default=None,
        metavar="PATH.json",
        help="Write a JSON report of the run (jobs, items, timeline, HTTP) to PATH; "
        "written also when the run fails or is interrupted. ini: dynpool_report.",
    )
    group.addoption(
        "--dynpool-html",
        dest="dynpool_html",
        default=None,
        metavar="PATH.html",
        help="Write a self-contained HTML timeline of the run to PATH (no network needed "
        "to open it). ini: dynpool_html.",
    )
    group.addoption(
        "--dynpool-plan",
        dest="dynpool_plan",
        action="store_true",
        default=None,
        help="Collect only and print every job (cap, rate, adaptive, items, where declared); "
        "no test runs. ini: dynpool_plan.",
    )
    parser.addini("dynpool_report", "dynpool JSON report path (relative to the ini file).")
    parser.addini("dynpool_html", "dynpool HTML timeline path (relative to the ini file).")
    parser.addini("dynpool_plan", "print the dynpool plan and run nothing.", type="bool")


def _path(config: pytest.Config, option: str, ini: str, flag: str) -> Path | None:
    """The flag's path (relative to the current directory), else the ini key's.

    An ini path is relative to the ini file, so that it means the same from
    any directory pytest is started in.
    """
    value = config.getoption(option)
    base = config.invocation_params.dir
    if not value:
        value = str(config.getini(ini) or "").strip()
        base = config.inipath.parent if config.inipath is not None else config.rootpath
    if not value:
        return None
    path = base / Path(os.path.expanduser(value))
    if path.is_dir():
        raise pytest.UsageError(
            f"{flag} / {ini}: {value!r} is a directory; give the path of the file to write"
        )
    return path


def read_report_settings(config: pytest.Config) -> ReportSettings:
    """Flags first, then ini keys."""
    plan_only = config.getoption("dynpool_plan")
    if plan_only is None:
        plan_only = bool(config.getini("dynpool_plan"))
    step_summary = os.environ.get(STEP_SUMMARY_ENV, "")
    return ReportSettings(
        json_path=_path(config, "dynpool_report", "dynpool_report", "--dynpool-report"),
        html_path=_path(config, "dynpool_html", "dynpool_html", "--dynpool-html"),
        plan_only=bool(plan_only),
        step_summary_path=Path(step_summary) if step_summary else None,
    )
