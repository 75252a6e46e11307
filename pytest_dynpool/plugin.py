"""pytest entry point: wires hooks only.

Imports no private pytest name and none of the runtime: ``runtime/`` and
``isolation/`` are imported when a pooled phase starts, after the version check.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from . import durations, hookspecs, markers
from .http import plugin as http_fixtures
from .jobs import (
    JobAssignment,
    Plan,
    assignment_from_marker,
    assignment_from_xdist_group,
    build_plan,
)
from .limits_store import add_store_options, register_store_plugin
from .options import Settings, Unmarked, add_options, read_settings
from .order import Order
from .patching import Patches
from .pytest_version import check_pytest_version
from .reports.options import ReportSettings, add_report_options, read_report_settings
from .stay_off import reason_to_stay_off
from .summary import RunStats, format_summary
from .xdist_balance import add_balance_option
from .xdist_role import WORKER_SIDE_KEY, WORKERINPUT_KEY, distributes, worker_input

SETTINGS_KEY = pytest.StashKey[Settings]()
DISABLED_REASON_KEY = pytest.StashKey[str]()
DISABLED_AFTER_COLLECTION_KEY = pytest.StashKey[str]()
PLAN_KEY = pytest.StashKey[Plan]()
STATS_KEY = pytest.StashKey[RunStats]()
# The patches of the session's pooled run, undone after pytest's session teardown.
PATCHES_KEY = pytest.StashKey[Patches]()
# pytest's own clock on the real one: kept until unconfigure, past the closing line.
TIMING_PATCHES_KEY = pytest.StashKey[Patches]()
REPORT_SETTINGS_KEY = pytest.StashKey[ReportSettings]()
# The HTTP fixtures are a plugin of their own, so that they also work with -p no:dynpool.
# Registered under its module name: a conftest's pytest_plugins naming it is then a no-op.
# This registration is the one place outside http/ that imports it: the pool core never
# does; the HTTP plugin hears of the pool through pytest_dynpool_pool_started.
FIXTURES_PLUGIN = "pytest_dynpool.fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    add_store_options(parser)
    add_balance_option(parser)
    add_report_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    # The markers have an entry point of their own (they stay known under -p no:dynpool);
    # registered here too for runs that load no entry point (PYTEST_DISABLE_PLUGIN_AUTOLOAD).
    if not pluginmanager.is_blocked(markers.PLUGIN_NAME) and not pluginmanager.has_plugin(
        markers.PLUGIN_NAME
    ):
        pluginmanager.register(markers, markers.PLUGIN_NAME)
    # Registered, not listed in pytest_plugins: that would mark the already
    # imported module for assertion rewriting and warn on every run.
    if not pluginmanager.is_blocked(FIXTURES_PLUGIN) and not pluginmanager.has_plugin(
        FIXTURES_PLUGIN
    ):
        pluginmanager.register(http_fixtures, FIXTURES_PLUGIN)


@pytest.hookimpl(wrapper=True, trylast=True)  # inside capture's: its streams exist
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None]:
    try:
        check_pytest_version()
    except pytest.UsageError:
        pass  # pytest_configure says so
    else:
        # Before any conftest or test module sees sys.stdout.buffer: see the module.
        from .isolation.session_streams import make_session_buffers_routable

        make_session_buffers_routable(early_config)
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    check_pytest_version()
    config.stash[SETTINGS_KEY] = read_settings(config)
    reason = reason_to_stay_off(config)
    if reason is not None:
        config.stash[DISABLED_REASON_KEY] = reason
    else:
        _start_xdist_side(config)
    register_store_plugin(config)  # a shared limits store, if one is chosen
    reports = config.stash[REPORT_SETTINGS_KEY] = read_report_settings(config)
    if reports.records or reports.step_summary_path:
        from .reports.recorder import register_recorder  # only when a report is asked for

        register_recorder(config, reports, config.stash[SETTINGS_KEY].workers)


def _start_xdist_side(config: pytest.Config) -> None:
    """Under ``-n``: the controller's or the worker's part (imported only then)."""
    if distributes(config):
        from .xdist_controller import XdistController

        controller = XdistController(config, config.stash[SETTINGS_KEY].workers)
        config.pluginmanager.register(controller, "dynpool-xdist-controller")
        return
    workerinput = worker_input(config)
    if workerinput is not None:
        from .xdist_channel import SideChannel
        from .xdist_worker import XdistWorker

        channel = SideChannel(workerinput[WORKERINPUT_KEY])
        worker = XdistWorker(config, channel, str(workerinput["workerid"]))
        config.pluginmanager.register(worker, "dynpool-xdist-worker")
        config.stash[WORKER_SIDE_KEY] = worker


def pytest_report_header(config: pytest.Config) -> str:
    settings = config.stash[SETTINGS_KEY]
    reason = config.stash.get(DISABLED_REASON_KEY, None)
    if reason is not None:
        return f"dynpool: off ({reason})"
    per_process = " per xdist worker" if distributes(config) else ""
    return (
        f"dynpool: {settings.workers} workers{per_process}, "
        f"unmarked tests: {settings.unmarked.value}"
    )


@pytest.hookimpl(trylast=True)
def pytest_dynpool_job_for_item(item: pytest.Item) -> JobAssignment | None:
    assignment = assignment_from_marker(item)
    if assignment is None and item.config.stash[SETTINGS_KEY].xdist_groups:
        return assignment_from_xdist_group(item)
    return assignment


@pytest.hookimpl(tryfirst=True)  # before the terminal asks for our collection line
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if DISABLED_REASON_KEY in config.stash:
        return
    reason = reason_to_stay_off(config, session.items)
    if reason is not None:
        config.stash[DISABLED_AFTER_COLLECTION_KEY] = reason
        return
    worker = config.stash.get(WORKER_SIDE_KEY, None)
    try:
        plan = _plan_of(config, session.items)
    except pytest.UsageError as error:
        if worker is not None:  # the controller never collects: it ends the run with this
            worker.usage_error(error)
        raise
    config.stash[PLAN_KEY] = plan
    if worker is not None:
        worker.plan_ready(session, plan)


def _plan_of(config: pytest.Config, items: list[pytest.Item]) -> Plan:
    settings = config.stash[SETTINGS_KEY]
    assignments = [config.hook.pytest_dynpool_job_for_item(item=item) for item in items]
    plan = build_plan(
        items,
        assignments,
        settings.cap_overrides,
        unmarked_in_pool=settings.unmarked is Unmarked.POOL,
        workers=settings.workers,
        rate_overrides=settings.rate_overrides,
        default_timeout=settings.timeout,
        alone_fixtures=settings.exclusive_fixtures,
    )
    plan.order = settings.order
    if settings.order is Order.DURATION:
        plan.known_seconds = durations.known_seconds(config, [p.item for p in plan.pooled])
    return plan


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
    if config.stash[REPORT_SETTINGS_KEY].plan_only and not collection_failed:
        from .reports.plan_preview import format_plan, show_plan

        off = config.stash.get(DISABLED_REASON_KEY, None)
        off = off or config.stash.get(DISABLED_AFTER_COLLECTION_KEY, None)
        workers = config.stash[SETTINGS_KEY].workers
        show_plan(session, format_plan(plan, workers, len(session.items), off))
        return True  # collection only: nothing runs, no fixture is set up
    if plan is None or not plan.pooled or collection_failed or config.option.collectonly:
        return None  # pytest's own loop: plain behaviour, or its collection-error exit
    if (worker := config.stash.get(WORKER_SIDE_KEY, None)) is not None:
        # Blocks until the controller has sent this worker all of its items.
        plan = config.stash[PLAN_KEY] = worker.receive_plan(
            session, plan, config.stash[SETTINGS_KEY]
        )
    stats = RunStats.for_plan(plan, config.stash[SETTINGS_KEY].workers)
    config.stash[STATS_KEY] = stats
    from .pytest_compat import keep_pytest_timing_real
    from .runtime.executor import run_session  # the runtime: only when the pool runs

    keep_pytest_timing_real(config.stash.setdefault(TIMING_PATCHES_KEY, Patches()))
    patches = config.stash[PATCHES_KEY] = Patches()
    try:
        gate = config.hook.pytest_dynpool_slot_gate(config=config)
        claims = config.hook.pytest_dynpool_item_claims(config=config, gate=gate)
        run_session(session, plan, stats, patches, gate, claims)
    finally:
        # Kept whatever the order, so that a later run by duration knows them.
        durations.remember(config, stats.item_seconds())
        config.hook.pytest_dynpool_run_finished(config=config, stats=stats)
    return True


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # After pytest's own session teardown, which still needs the fixture store.
    _undo_patches(session.config)


def pytest_unconfigure(config: pytest.Config) -> None:
    _undo_patches(config)  # in case the session ended before its sessionfinish
    timing_patches = config.stash.get(TIMING_PATCHES_KEY, None)
    if timing_patches is not None:
        del config.stash[TIMING_PATCHES_KEY]
        timing_patches.close()


def _undo_patches(config: pytest.Config) -> None:
    patches = config.stash.get(PATCHES_KEY, None)
    if patches is not None:
        del config.stash[PATCHES_KEY]
        patches.close()


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
