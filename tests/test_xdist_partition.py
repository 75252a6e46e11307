"""How the xdist controller splits a run among workers (pure), and the xdist version check."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_dynpool.pytest_version import check_xdist_version
from pytest_dynpool.xdist_partition import partition


def test_xdist_version_check() -> None:
    assert check_xdist_version("3.6.0") is None
    assert check_xdist_version("3.8.0") is None
    assert "not supported" in (check_xdist_version("3.5.0") or "")
    assert "not supported" in (check_xdist_version("4.0.0") or "")


@given(
    workers=st.integers(1, 5),
    counts=st.lists(st.integers(0, 20), max_size=6),
    exclusive=st.integers(0, 10),
)
def test_partition_gives_every_item_once_and_spreads_every_job(
    workers: int, counts: list[int], exclusive: int
) -> None:
    jobs = []
    next_index = 0
    for count in counts:
        jobs.append(list(range(next_index, next_index + count)))
        next_index += count
    exclusive_items = list(range(next_index, next_index + exclusive))
    parts = partition(workers, jobs, exclusive_items)
    every = sorted(i for part in parts for i in part)
    assert every == list(range(next_index + exclusive))
    pooled = [sum(i < next_index for i in part) for part in parts]
    assert max(pooled) - min(pooled) <= 1  # pooled items spread evenly over the workers
    for job in jobs:
        held = [len(set(part) & set(job)) for part in parts]
        assert max(held) - min(held) <= 1  # and so does each job
    sizes = [sum(i in exclusive_items for i in part) for part in parts]
    assert max(sizes, default=0) - min(sizes, default=0) <= 1
