"""pytest-randomly shuffles the items: the pool takes them in any order, and outcomes and
fixture lifetimes stay plain pytest's with the same seed."""

from __future__ import annotations

import pytest

from ..suite_generator import run
from ..test_fixtures import SUITE, assert_torn_down_after_last_use, make_suite

pytest.importorskip("pytest_randomly")


@pytest.mark.parametrize("seed", ["1", "2", "3"])
def test_shuffled_suite_keeps_outcomes_and_fixture_lifetimes(
    pytester: pytest.Pytester, seed: str
) -> None:
    make_suite(pytester, SUITE)
    shuffle = ("-p", "randomly", f"--randomly-seed={seed}")
    plain = run(pytester, "-p", "no:dynpool", *shuffle)
    pooled = run(pytester, *shuffle, "--dynpool-workers", "4")
    pooled.result.stdout.fnmatch_lines([f"*--randomly-seed={seed}*", "*= dynpool =*"])
    assert pooled.result.ret == plain.result.ret
    assert pooled.outcomes == plain.outcomes
    # A shuffled order makes plain pytest set a module's instance up again when
    # its items are interleaved with others; the pool keeps one: the same
    # instances, each set up and torn down in balance, none used while down.
    assert set(pooled.counts("setup")) == set(plain.counts("setup"))
    assert pooled.counts("setup") == pooled.counts("teardown")
    assert_torn_down_after_last_use(pooled.events)
