"""Every patch restores exactly what was there, also after timeouts, interrupts, errors and -x."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

from pytest_dynpool import patching
from pytest_dynpool.isolation.warning_state import warnings_per_item

# Records pluggy's hook executor before the session and checks it at the very end,
# after the threads left behind by a timeout have ended.
CHECK_HOOKEXEC = """
import threading
import pytest

release = threading.Event()
before = []

@pytest.fixture(scope="session", autouse=True)
def release_stuck_threads():
    yield
    release.set()

def pytest_sessionstart(session):
    before.append(session.config.pluginmanager._inner_hookexec)

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    for thread in threading.enumerate():
        if thread.name.startswith("dynpool-worker-"):
            thread.join(timeout=60)
    restored = config.pluginmanager._inner_hookexec is before[0]
    with open("hookexec_restored.txt", "w") as out:
        out.write(str(restored))
"""


def _assert_all_undone(pytester: pytest.Pytester) -> None:
    assert (pytester.path / "hookexec_restored.txt").read_text() == "True"
    assert patching.live_patches() == 0
    assert patching.unrestored() == []


def test_undo_after_a_timeout(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CHECK_HOOKEXEC)
    pytester.makepyfile(
        """
        import pytest
        from conftest import release

        @pytest.mark.dynpool(2, timeout=0.5)
        def test_stuck():
            release.wait()

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(3))
        def test_other(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2")
    result.assert_outcomes(passed=3, failed=1)
    _assert_all_undone(pytester)


def test_undo_after_an_interrupt(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CHECK_HOOKEXEC)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(4))
        def test_interrupted(n):
            if n == 1:
                raise KeyboardInterrupt
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    _assert_all_undone(pytester)


def test_undo_after_an_internal_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        CHECK_HOOKEXEC
        + """
def pytest_runtest_logreport(report):
    if report.when == "call" and report.nodeid.endswith("[1]"):
        raise RuntimeError("a reporting plugin breaks")
"""
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(4))
        def test_a(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    _assert_all_undone(pytester)


def test_undo_after_exitfirst(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CHECK_HOOKEXEC)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(6))
        def test_a(n):
            assert n != 2
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2", "-x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _assert_all_undone(pytester)


class _Owner:
    inherited = "class value"


def test_patch_attribute_restores_exactly_what_was_there() -> None:
    owner = _Owner()
    undo_inherited = patching.patch_attribute(owner, "inherited", "patched")
    undo_own = patching.patch_attribute(_Owner, "inherited", "patched class")
    assert (owner.inherited, _Owner.inherited) == ("patched", "patched class")
    undo_own()
    undo_inherited()
    assert "inherited" not in vars(owner)  # it had none of its own: none after the undo
    assert _Owner.inherited == "class value"
    undo_inherited()  # a second undo changes nothing
    assert "inherited" not in vars(owner)


class _Slotted:
    __slots__ = ("set_slot", "unset_slot")
    set_slot: str
    unset_slot: str

    def __init__(self) -> None:
        self.set_slot = "own value"


def test_patch_attribute_restores_a_slot_exactly() -> None:
    """pluggy's HookCaller keeps ``_hookexec`` in a slot: no __dict__ to restore it from."""
    owner = _Slotted()
    undo_set = patching.patch_attribute(owner, "set_slot", "patched")
    undo_unset = patching.patch_attribute(owner, "unset_slot", "patched too")
    assert (owner.set_slot, owner.unset_slot) == ("patched", "patched too")
    assert sorted(patching.unrestored()) == [f"{owner!r}.set_slot", f"{owner!r}.unset_slot"]
    undo_unset()
    undo_set()
    assert owner.set_slot == "own value"
    assert not hasattr(owner, "unset_slot")  # it held nothing: nothing after the undo
    assert patching.unrestored() == []


def test_report_hooks_are_routed_on_their_hook_callers_only(pytester: pytest.Pytester) -> None:
    """Only the four report hooks pass through the router; each is back after the run."""
    pytester.makeconftest(
        """
        import pytest
        seen = {}

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(item):
            hook = item.config.hook
            seen[item.name] = (
                hook.pytest_runtest_logreport._hookexec is not item.config.pluginmanager._hookexec,
                hook.pytest_runtest_call._hookexec == item.config.pluginmanager._hookexec,
            )

        def pytest_unconfigure(config):
            hook = config.hook
            with open("routed.txt", "w") as out:
                out.write(repr(sorted(seen.values())))
                pm = config.pluginmanager
                out.write(repr(hook.pytest_runtest_logreport._hookexec == pm._hookexec))
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(4))
        def test_n(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2")
    result.assert_outcomes(passed=4)
    assert (pytester.path / "routed.txt").read_text() == repr([(True, True)] * 4) + "True"


def test_late_undo_leaves_alone_what_someone_set_since() -> None:
    owner = _Owner()
    undo = patching.patch_attribute(owner, "inherited", "ours", if_still_ours=True)
    owner.inherited = "theirs"
    undo()
    assert owner.inherited == "theirs"


@pytest.mark.skipif(
    getattr(sys.flags, "context_aware_warnings", False), reason="no patch on Python 3.14+"
)
def test_warning_state_restores_the_module_class_it_found() -> None:
    module = sys.modules["warnings"]

    class ForeignModuleType(types.ModuleType):
        """Another tool's module class (a lazy loader, say)."""

    original_class: type[types.ModuleType] = type(module)
    module.__class__ = ForeignModuleType
    try:
        with patching.Patches() as patches:
            warnings_per_item(patches)
            assert type(module) is not ForeignModuleType
        assert type(module) is ForeignModuleType
    finally:
        module.__class__ = original_class  # type: ignore[assignment]
    assert isinstance(warnings.filters, list)
