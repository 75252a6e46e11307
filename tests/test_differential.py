"""Generated suites against plain pytest: same outcomes, same fixture lifetimes, caps held.

``suite_generator.py`` draws the suites: package trees, a random fixture DAG of
every scope, xunit functions, parametrization, skips, xfails, failing setups and
teardowns, tests that print and use ``redirect_stdout``, doctests, random
``dynpool`` markers, cap overrides, ``--dynpool-unmarked``, ``-x`` and a worker
count. pytest itself (``-p no:dynpool``) is the oracle. CI
runs the ``dynpool-ci`` profile (see conftest.py); ``--hypothesis-profile=dynpool-long``
runs many more examples.
"""

from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, given, settings

from .suite_generator import (
    INI,
    IdiomSuite,
    Phases,
    Run,
    Suite,
    assert_caps_held,
    assert_lifetimes,
    idiom_suites,
    run,
    suites,
)


def _without_teardown(phases: Phases) -> Phases:
    return {
        nodeid: [entry for entry in entries if entry[0] != "teardown"]
        for nodeid, entries in phases.items()
    }


def assert_every_started_item_reported(pooled: Run) -> None:
    """An item that started has its setup and teardown logged, exactly once each."""
    started = {tag.split("|", 1)[1] for kind, tag in pooled.events if kind == "enter"}
    phases = pooled.phases()
    assert set(phases) == started
    for nodeid, entries in phases.items():
        whens = [when for when, _, _ in entries]
        assert whens.count("setup") == 1, (nodeid, entries)
        assert whens.count("teardown") == 1, (nodeid, entries)
        assert whens.count("call") <= 1, (nodeid, entries)


def assert_same_as_plain(suite: Suite, plain: Run, pooled: Run) -> None:
    plain_phases, pooled_phases = plain.phases(), pooled.phases()
    assert pooled.result.ret == plain.result.ret
    if suite.exitfirst:
        # The pool runs items in another order, so -x stops at another place:
        # whatever it ran must have had plain pytest's outcome.
        assert set(pooled_phases) <= set(plain_phases)
        plain_phases = {nodeid: plain_phases[nodeid] for nodeid in pooled_phases}
    else:
        assert pooled.teardown_errors() == plain.teardown_errors()
        for kind in ("setup", "setup_error", "teardown"):
            if suite.reorders:
                assert set(pooled.counts(kind)) == set(plain.counts(kind)), kind
            else:
                assert pooled.counts(kind) == plain.counts(kind), kind
    if suite.exitfirst:
        # After -x the item that stops the run tears everything down, and which
        # one that is depends on timing.
        assert _without_teardown(pooled_phases) == _without_teardown(plain_phases)
    else:
        assert pooled_phases == plain_phases
    # Output (prints, redirect_stdout, doctests) is each item's own, as in plain pytest.
    plain_output = plain.captured_stdout()
    for nodeid, output in pooled.captured_stdout().items():
        assert output == plain_output[nodeid], nodeid


@settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ]
)
@given(suite=suites())
def test_generated_suites_match_plain_pytest(pytester: pytest.Pytester, suite: Suite) -> None:
    suite.write(pytester.path)
    plain = run(pytester, "-p", "no:dynpool", *suite.shared_args())
    pooled = run(
        pytester, *suite.shared_args(), *suite.args(), *(["-x"] if suite.exitfirst else [])
    )
    assert plain.events, "the suite recorded nothing: the comparison would prove nothing"
    assert_lifetimes(plain.events)
    assert_lifetimes(pooled.events)
    assert_caps_held(pooled.events, suite.caps, suite.workers)
    assert_every_started_item_reported(pooled)
    assert_same_as_plain(suite, plain, pooled)


def _outcomes_on_both(plain: Run, pooled: Run) -> None:
    """Tests that both runs reached have the same phases and outcomes."""
    plain_phases, pooled_phases = plain.phases(), pooled.phases()
    both = set(plain_phases) & set(pooled_phases)
    assert {n: pooled_phases[n] for n in both} == {n: plain_phases[n] for n in both}


def _run_idioms(pytester: pytest.Pytester, suite: IdiomSuite, *args: str) -> tuple[Run, Run]:
    cache = pytester.path / ".pytest_cache"
    shutil.rmtree(cache, ignore_errors=True)
    plain = run(pytester, "-p", "no:dynpool", *args)
    plain_again = run(pytester, "-p", "no:dynpool", *args) if suite.stepwise else None
    shutil.rmtree(cache, ignore_errors=True)
    pooled = run(pytester, "--dynpool-workers", str(suite.workers), *args)
    if plain_again is not None:
        pooled_again = run(pytester, "--dynpool-workers", str(suite.workers), *args)
        # The second --sw run starts where the first stopped: plain pytest's failure
        # must not be skipped (it was, when a later failure was logged last).
        assert pooled_again.result.ret == plain_again.result.ret
        _outcomes_on_both(plain_again, pooled_again)
        plain_failed = {
            n for n, p in plain_again.phases().items() if ("call", "failed", False) in p
        }
        pooled_failed = {
            n for n, p in pooled_again.phases().items() if ("call", "failed", False) in p
        }
        assert plain_failed <= pooled_failed | set(plain.phases()) - set(pooled_again.phases())
    return plain, pooled


@settings(
    # Up to four runs per example: a fifth of the profile's examples.
    max_examples=max(10, settings().max_examples // 5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(suite=idiom_suites())
def test_generated_idioms_match_plain_pytest(pytester: pytest.Pytester, suite: IdiomSuite) -> None:
    """Session-fixture logger levels, KeyboardInterrupt or pytest.exit() in a test, --sw."""
    pytester.makeini(INI)
    pytester.makepyfile(test_idioms=suite.source())
    plain, pooled = _run_idioms(pytester, suite, *(["--sw"] if suite.stepwise else []))
    assert plain.phases(), "plain pytest ran nothing: the comparison would prove nothing"
    assert pooled.result.ret == plain.result.ret
    _outcomes_on_both(plain, pooled)
    stopper = suite.stopping_nodeid()
    for nodeid, entries in pooled.phases().items():
        if nodeid != stopper:  # the test that stops the run has no teardown report, as in pytest
            assert [when for when, _, _ in entries].count("teardown") == 1, (nodeid, entries)
    if stopper is None and not suite.stepwise:
        assert set(pooled.phases()) == set(plain.phases())
