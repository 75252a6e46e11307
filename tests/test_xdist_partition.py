"""How the xdist controller splits a run among workers (pure), and the xdist version check."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pytest_dynpool.pytest_version import check_xdist_version
from pytest_dynpool.xdist_partition import JobItems, partition, split_cap


def test_xdist_version_check() -> None:
    assert check_xdist_version("3.6.0") is None
    assert check_xdist_version("3.8.0") is None
    assert "not supported" in (check_xdist_version("3.5.0") or "")
    assert "not supported" in (check_xdist_version("4.0.0") or "")


def test_split_cap() -> None:
    assert split_cap(8, 2) == [4, 4]
    assert split_cap(3, 2) == [2, 1]
    assert split_cap(1, 4) == [1]
    assert split_cap(5, 3) == [2, 2, 1]


@given(
    workers=st.integers(1, 5),
    jobs=st.lists(st.tuples(st.integers(1, 9), st.integers(0, 20), st.booleans()), max_size=6),
    exclusive=st.integers(0, 10),
)
def test_partition_gives_every_item_once_and_never_more_than_the_cap(
    workers: int, jobs: list[tuple[int, int, bool]], exclusive: int
) -> None:
    specs = []
    next_index = 0
    for cap, count, per_worker in jobs:
        specs.append(JobItems(cap, list(range(next_index, next_index + count)), per_worker))
        next_index += count
    exclusive_items = list(range(next_index, next_index + exclusive))
    shares = partition(workers, specs, exclusive_items)
    every = sorted(i for share in shares for i in share.items)
    assert every == list(range(next_index + exclusive))
    for job_index, spec in enumerate(specs):
        holders = [share for share in shares if set(share.items) & set(spec.items)]
        assert all(job_index in share.caps and share.caps[job_index] >= 1 for share in holders)
        total = sum(share.caps.get(job_index, 0) for share in shares)
        if spec.cap_per_worker:
            assert all(share.caps[job_index] == spec.cap for share in holders)
        else:
            assert total <= spec.cap
            if len(spec.items) >= spec.cap:
                # The whole cap is usable: shares sum to it unless items run out.
                assert total == spec.cap or len(holders) < min(spec.cap, workers)
    sizes = [sum(i in exclusive_items for i in share.items) for share in shares]
    assert max(sizes, default=0) - min(sizes, default=0) <= 1
