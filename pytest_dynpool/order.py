"""The dispatch orders and the expected duration of each item: pure, no pytest.

The scheduler ranks runnable jobs by one of these orders; the duration order
needs each item's expected seconds (``estimates.py``).
"""

from __future__ import annotations

from enum import Enum


class Order(str, Enum):
    """Which runnable job a free worker serves first (``--dynpool-order``)."""

    DURATION = "duration"
    """Most remaining expected seconds per slot first; a job's longest items first."""
    COUNT = "count"
    """Most remaining items per cap first; a job's items in collection order."""
    COLLECTION = "collection"
    """The job whose next item was collected first: as close to pytest's order as caps allow."""
