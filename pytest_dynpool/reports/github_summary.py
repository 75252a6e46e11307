"""The CI step summary: the job table and the pool line as markdown, appended to
``$GITHUB_STEP_SUMMARY`` (GitHub Actions renders that file on the run's page)."""

from __future__ import annotations

from pathlib import Path

from ..summary import RunStats, job_table_rows, pool_line

# GitHub renders HTML and markdown in a table cell: a test id must stay text.
_MARKDOWN_SAFE = str.maketrans({char: f"&#{ord(char)};" for char in "&<>|\\`*_[]#~"})


def _cell(text: str) -> str:
    return text.translate(_MARKDOWN_SAFE)


def step_summary_markdown(stats: RunStats) -> str:
    """The ``dynpool`` section in markdown: one table row per job, then the pool line."""
    header, *rows = job_table_rows(stats)
    lines = [
        "### dynpool",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", *("---:" for _ in header[1:])]) + "|",
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    lines += ["", _cell(pool_line(stats)), ""]
    return "\n".join(lines) + "\n"


def append_step_summary(path: Path, stats: RunStats) -> None:
    """Append, never overwrite: earlier steps of the job wrote their own sections."""
    with path.open("a", encoding="utf-8") as summary:
        summary.write(step_summary_markdown(stats))
