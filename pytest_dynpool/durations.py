"""Each pooled item's measured duration, kept between runs in pytest's cache.

The scheduler's duration order starts the longest work first; it learns the
durations here. Nothing is read or written when the cache plugin is off
(``-p no:cacheprovider``). Each run overwrites the figures of the items it ran
and keeps those of the items it did not select.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

CACHE_KEY = "dynpool/durations"


def _cache(config: pytest.Config) -> pytest.Cache | None:
    # The cache plugin sets config.cache in its pytest_configure; absent when it is off.
    cache: pytest.Cache | None = getattr(config, "cache", None)
    return cache


def _read(cache: pytest.Cache) -> dict[str, float]:
    stored = cache.get(CACHE_KEY, {})
    if not isinstance(stored, dict):
        return {}  # written by something else, or by hand: start afresh
    return {
        str(node_id): float(seconds)
        for node_id, seconds in stored.items()
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0
    }


def known_seconds(config: pytest.Config, items: Sequence[pytest.Item]) -> list[float | None]:
    """Seconds each item took when it last ran in the pool; None when it never did."""
    cache = _cache(config)
    if cache is None:
        return [None] * len(items)
    stored = _read(cache)
    return [stored.get(item.nodeid) for item in items]


def remember(config: pytest.Config, seconds_of: Mapping[str, float]) -> None:
    """Keep this run's measured durations for the next run."""
    cache = _cache(config)
    if cache is None or not seconds_of:
        return
    stored = _read(cache)
    stored.update(seconds_of)
    cache.set(CACHE_KEY, {node_id: round(seconds, 6) for node_id, seconds in stored.items()})
