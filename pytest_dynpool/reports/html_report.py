"""The HTML timeline: one self-contained file (inline CSS, JS and SVG; no network).

The run's data goes into the page as JSON in a ``<script type="application/json">``
block with every ``<``, ``>`` and ``&`` escaped, so no test id can end the block;
``timeline.js`` reads it and writes every test id with ``textContent``.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from .json_report import report_document
from .record import RunRecord

_OUTCOME_CODES = {
    name: code
    for code, name in enumerate(
        ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "interrupted", "not run")
    )
}
_PHASE_LETTERS = {"passed": "P", "failed": "F", "skipped": "S"}
# Characters that could end a script block or open markup, and the line separators
# that older JavaScript parsers treat as line ends.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _worker_order(name: str) -> tuple[int, int, str]:
    """MainThread first, then dynpool-worker-N by N, then any other thread by name."""
    if name == "MainThread":
        return (0, 0, name)
    prefix, _, number = name.rpartition("-")
    if prefix == "dynpool-worker" and number.isdigit():
        return (1, int(number), name)
    return (2, 0, name)


def timeline_data(record: RunRecord) -> dict[str, Any]:
    """What ``timeline.js`` draws: the report, with items as compact rows."""
    document = report_document(record)
    jobs = document["jobs"]  # ordered by bound, as the page's table
    job_index = {job["name"]: index for index, job in enumerate(jobs)}
    workers = sorted({_worker_label(item) for item in document["items"]}, key=_worker_order)
    worker_index = {name: index for index, name in enumerate(workers)}
    items = [
        [
            item["nodeid"],
            job_index.get(item["job"], -1) if item["job"] is not None else -1,
            worker_index[_worker_label(item)],
            item["start"],
            item["end"],
            _OUTCOME_CODES[item["outcome"]],
            "".join(
                _PHASE_LETTERS.get(item["phases"].get(when, ""), "-")
                for when in ("setup", "call", "teardown")
            ),
            1 if item["timed_out"] else 0,
        ]
        for item in document["items"]
    ]
    return {
        "run": document["run"],
        "wall": max([document["run"]["wall_seconds"], *(item[4] for item in items)]),
        "jobs": jobs,
        "workers": workers,
        "items": items,
        "http": document["http"],
        "caps": {
            traffic["job"]: [[change["at"], change["cap"]] for change in traffic["cap_changes"]]
            for traffic in document["http"]
        },
        "overloads": {traffic["job"]: traffic["overloaded_at"] for traffic in document["http"]},
    }


def _worker_label(item: dict[str, Any]) -> str:
    """Under xdist a thread name repeats in every process: the row is process and thread."""
    worker: str = item["worker"]
    return worker if item["process"] is None else f"{item['process']} {worker}"


def _resource(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def render_html(record: RunRecord) -> str:
    """The whole page as a string."""
    payload = json.dumps(timeline_data(record), ensure_ascii=False, separators=(",", ":"))
    title = html.escape(f"dynpool timeline, {record.started_at}")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No request may leave the page: everything it needs is in it.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{title}</title><style>{_resource('timeline.css')}</style></head>\n"
        '<body><div id="dynpool"></div>\n'
        '<script type="application/json" id="dynpool-data">'
        f"{payload.translate(_SCRIPT_SAFE)}</script>\n"
        f"<script>{_resource('timeline.js')}</script>\n"
        "</body></html>\n"
    )
