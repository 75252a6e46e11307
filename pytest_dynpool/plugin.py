"""pytest entry point: options, marker, planning after collection, the run loop, summary."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from . import hookspecs
from .http import plugin as http_fixtures
from .isolation.session_streams import routable_session_buffers
from .jobs import MARKER_HELP, JobAssignment, Plan, assignment_from_marker, build_plan
from .options import Settings, Unmarked, add_options, read_settings
from .pytest_compat import check_pytest_version, global_capture_streams, xdist_is_active
from .runtime.coordinator import PoolExecutor
from .runtime.fixture_store import install_fixture_store, uninstall_fixture_store
from .stay_off import reason_to_stay_off, reason_to_stay_off_for
from .summary import JobStats, RunStats, format_summary

SETTINGS_KEY = pytest.StashKey[Settings]()
DISABLED_REASON_KEY = pytest.StashKey[str]()
DISABLED_AFTER_COLLECTION_KEY = pytest.StashKey[str]()
PLAN_KEY = pytest.StashKey[Plan]()
STATS_KEY = pytest.StashKey[RunStats]()
STORE_INSTALLED_KEY = pytest.StashKey[bool]()
# The HTTP fixtures are a plugin of their own, so that they also work with -p no:dynpool.
# Registered under its module name: a conftest's pytest_plugins naming it is then a no-op.
FIXTURES_PLUGIN = "pytest_dynpool.fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    # Registered, not listed in pytest_plugins: that would mark the already
    # imported module for assertion rewriting and warn on every run.
    if not pluginmanager.is_blocked(FIXTURES_PLUGIN) and not pluginmanager.has_plugin(
        FIXTURES_PLUGIN
    ):
        pluginmanager.register(http_fixtures, FIXTURES_PLUGIN)


@pytest.hookimpl(wrapper=True, trylast=True)  # inside capture's: its streams exist
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None]:
    capman = early_config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        # Before any conftest or test module sees sys.stdout.buffer (isolation/session_streams).
        early_config.add_cleanup(routable_session_buffers(global_capture_streams(capman)))
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    check_pytest_version()
    config.stash[SETTINGS_KEY] = read_settings(config)
    if xdist_is_active(config):
        config.stash[DISABLED_REASON_KEY] = "pytest-xdist is active (-n); markers are ignored"
    elif config.getoption("usepdb", False) or config.getoption("trace", False):
        config.stash[DISABLED_REASON_KEY] = "--pdb/--trace: every test runs alone"
    elif (reason := reason_to_stay_off(config)) is not None:
        config.stash[DISABLED_REASON_KEY] = reason


def pytest_report_header(config: pytest.Config) -> str:
    settings = config.stash[SETTINGS_KEY]
    reason = config.stash.get(DISABLED_REASON_KEY, None)
    if reason is not None:
        return f"dynpool: off ({reason})"
    return f"dynpool: {settings.workers} workers, unmarked tests: {settings.unmarked.value}"


@pytest.hookimpl(trylast=True)
def pytest_dynpool_job_for_item(item: pytest.Item) -> JobAssignment | None:
    return assignment_from_marker(item)


@pytest.hookimpl(tryfirst=True)  # before the terminal asks for our collection line
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if DISABLED_REASON_KEY in config.stash:
        return
    reason = reason_to_stay_off_for(config, session.items)
    if reason is not None:
        config.stash[DISABLED_AFTER_COLLECTION_KEY] = reason
        return
    settings = config.stash[SETTINGS_KEY]
    assignments = [config.hook.pytest_dynpool_job_for_item(item=item) for item in session.items]
    config.stash[PLAN_KEY] = build_plan(
        session.items,
        assignments,
        settings.cap_overrides,
        unmarked_in_pool=settings.unmarked is Unmarked.POOL,
        workers=settings.workers,
        rate_overrides=settings.rate_overrides,
        default_timeout=settings.timeout,
    )


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    if config.get_verbosity() < 0:
        return None  # -q: quiet means quiet (tools parse `--co -q`)
    reason = config.stash.get(DISABLED_AFTER_COLLECTION_KEY, None)
    if reason is not None:
        return f"dynpool: off ({reason})"
    plan = config.stash.get(PLAN_KEY, None)
    if plan is None or not plan.pooled:
        return None
    return (
        f"dynpool: {len(plan.jobs)} jobs, {len(plan.pooled)} pooled items, "
        f"{len(plan.exclusive)} exclusive items"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    config = session.config
    plan = config.stash.get(PLAN_KEY, None)
    collection_failed = session.testsfailed and not config.option.continue_on_collection_errors
    if plan is None or not plan.pooled or collection_failed or config.option.collectonly:
        return None  # pytest's own loop: plain behaviour, or its collection-error exit
    stats = RunStats(
        workers=config.stash[SETTINGS_KEY].workers,
        jobs=[JobStats(job) for job in plan.jobs],
        exclusive_items=len(plan.exclusive),
        unknown_overrides=plan.unknown_overrides,
    )
    for index in plan.job_of_pooled:
        stats.jobs[index].items += 1
    config.stash[STATS_KEY] = stats
    install_fixture_store(session)
    config.stash[STORE_INSTALLED_KEY] = True
    try:
        PoolExecutor(session, plan, stats).run()
    finally:
        config.hook.pytest_dynpool_run_finished(config=config, stats=stats)
    return True


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # After pytest's own session teardown, which still needs the fixture store.
    if session.config.stash.get(STORE_INSTALLED_KEY, False):
        session.config.stash[STORE_INSTALLED_KEY] = False
        uninstall_fixture_store()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    stats = terminalreporter.config.stash.get(STATS_KEY, None)
    if stats is None:
        return
    terminalreporter.write_sep("=", "dynpool")
    for line in format_summary(stats):
        terminalreporter.write_line(line)
    if stats.outside_tests_output and _shows_passed_output(terminalreporter):
        terminalreporter.write_sep("-", "dynpool: output of threads outside any test")
        terminalreporter.write(stats.outside_tests_output)


def _shows_passed_output(terminalreporter: pytest.TerminalReporter) -> bool:
    """Shown when captured output is: with -rP/-rA, or when something failed."""
    chars = terminalreporter.reportchars
    return "P" in chars or "A" in chars or bool(terminalreporter.stats.get("failed"))
