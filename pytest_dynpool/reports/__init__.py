"""What the pool did, for people and CI: JSON report, HTML timeline, step summary, plan.

Imported by the core plugin only when one of them is asked for
(``--dynpool-report``, ``--dynpool-html``, ``$GITHUB_STEP_SUMMARY``, ``--dynpool-plan``).
"""

from __future__ import annotations

from .record import CapChange, HttpJobRecord, ItemRecord, JobRecord, RunRecord, merge_records

__all__ = ["CapChange", "HttpJobRecord", "ItemRecord", "JobRecord", "RunRecord", "merge_records"]
