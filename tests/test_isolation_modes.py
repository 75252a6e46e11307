"""Capture modes, capture and log fixtures, and pytest's diagnostics, per pooled item.

Each suite is run with the plugin off and on (its tests meeting at a barrier so
that they overlap), and must give the same outcomes and the same report sections.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .test_isolation import CONFTEST, _terminal_sections

PAIR_CONFTEST = CONFTEST.replace("Barrier(8", "Barrier(2")


def _both(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, pytest.RunResult]:
    plain = pytester.runpytest("-p", "no:dynpool", *args)
    pooled = pytester.runpytest("--dynpool-workers", "2", *args)
    return plain, pooled


def _same_report(plain: pytest.RunResult, pooled: pytest.RunResult) -> None:
    assert pooled.ret == plain.ret
    assert pooled.parseoutcomes() == plain.parseoutcomes()
    pooled_sections = _terminal_sections(pooled.outlines)
    plain_sections = _terminal_sections(plain.outlines)
    assert set(pooled_sections) == set(plain_sections)
    for title, body in plain_sections.items():
        assert _no_addresses(pooled_sections[title]) == _no_addresses(body), title


def _no_addresses(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x...", text)


CAPTURE_FIXTURES_SUITE = """
import sys
import pytest

pytestmark = pytest.mark.dynpool(2)

@pytest.mark.parametrize("name", ["capsys", "capfd", "capteesys"])
def test_text(name, request, together):
    fixture = request.getfixturevalue(name)
    print(f"out of {name}")
    together()
    sys.stderr.write(f"err of {name}\\n")
    together()
    assert fixture.readouterr() == (f"out of {name}\\n", f"err of {name}\\n")
    print(f"unread by {name}")
    assert name != "capsys", "fails, to show the unread output in the report"

@pytest.mark.parametrize("name", ["capsysbinary", "capfdbinary"])
def test_binary(name, request, together):
    fixture = request.getfixturevalue(name)
    sys.stdout.buffer.write(f"bytes of {name}\\n".encode())
    sys.stdout.flush()
    together()
    print(f"text of {name}")
    together()
    assert fixture.readouterr().out == f"bytes of {name}\\ntext of {name}\\n".encode()

@pytest.mark.parametrize("n", range(3))
def test_disabled(n, capsys, together):
    together()
    with capsys.disabled():
        print(f"straight to the terminal <{n}>")
    together()
    print(f"captured <{n}>")
    assert capsys.readouterr().out == f"captured <{n}>\\n"
"""


def test_capture_fixtures_are_per_item(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PAIR_CONFTEST)
    pytester.makepyfile(test_capture=CAPTURE_FIXTURES_SUITE)
    plain, pooled = _both(pytester, "-rA")
    pooled.assert_outcomes(passed=7, failed=1)
    _same_report(plain, pooled)
    for n in range(3):
        assert pooled.stdout.str().count(f"straight to the terminal <{n}>") == 1


@pytest.mark.parametrize("mode", ["-s", "--capture=tee-sys", "--capture=sys"])
def test_capture_modes_match_plain_pytest(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makeconftest(PAIR_CONFTEST)
    pytester.makepyfile(
        test_modes="""
        import pytest

        pytestmark = pytest.mark.dynpool(2)

        @pytest.mark.parametrize("n", range(2))
        def test_print(n, capsys, together):
            print(f"read <{n}>")
            together()
            assert capsys.readouterr().out == f"read <{n}>\\n"
            print(f"left for the report <{n}>")
            together()
            assert n == 0
        """
    )
    plain, pooled = _both(pytester, "-rA", mode)
    pooled.assert_outcomes(passed=1, failed=1)
    _same_report(plain, pooled)
    for n in range(2):
        count = pooled.stdout.str().count(f"left for the report <{n}>")
        assert count == plain.stdout.str().count(f"left for the report <{n}>")
        assert count >= 1


LOG_SUITE = """
import logging
import pytest

pytestmark = pytest.mark.dynpool(2)
app = logging.getLogger("app")

def test_at_level(caplog, together):
    with caplog.at_level(logging.DEBUG, logger="app"):
        together()
        app.debug("debug of at_level")
        together()
    app.debug("after at_level, not captured")
    assert [r.getMessage() for r in caplog.records] == ["debug of at_level"]

def test_default_level(caplog, together):
    together()
    app.debug("not enabled here")
    app.warning("warning of default_level")
    together()
    assert [r.getMessage() for r in caplog.records] == ["warning of default_level"]
    assert not app.isEnabledFor(logging.DEBUG)

@pytest.mark.parametrize("n", range(2))
def test_set_level(n, caplog, together):
    caplog.set_level(logging.INFO if n else logging.ERROR)
    together()
    app.info("info <%s>", n)
    app.error("error <%s>", n)
    together()
    expected = [f"info <{n}>", f"error <{n}>"] if n else [f"error <{n}>"]
    assert [r.getMessage() for r in caplog.records] == expected
    assert caplog.get_records("call") == caplog.records
"""


def test_log_levels_and_caplog_are_per_item(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PAIR_CONFTEST)
    pytester.makeini("[pytest]\nlog_file = tests.log\nlog_file_level = WARNING\n")
    pytester.makepyfile(test_logs=LOG_SUITE)
    plain, pooled = _both(pytester, "-rA")
    pooled.assert_outcomes(passed=4)
    _same_report(plain, pooled)
    log_file = (pytester.path / "tests.log").read_text()
    for message in ("warning of default_level", "error <0>", "error <1>"):
        assert message in log_file
    assert "info <1>" not in log_file


def test_unraisable_exception_is_reported_with_its_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PAIR_CONFTEST)
    pytester.makeini(
        "[pytest]\nfilterwarnings =\n    default::pytest.PytestUnraisableExceptionWarning\n"
    )
    pytester.makepyfile(
        test_unraisable="""
        import pytest

        pytestmark = pytest.mark.dynpool(2)

        class Broken:
            def __del__(self):
                raise ValueError("raised in __del__")

        def test_drops_broken(together):
            together()
            Broken()
            together()

        def test_neighbour(together):
            together()
            together()
        """
    )
    plain, pooled = _both(pytester)
    pooled.assert_outcomes(passed=2, warnings=1)
    _same_report(plain, pooled)
    warned = r"test_unraisable.py::test_drops_broken\n.*PytestUnraisableExceptionWarning"
    assert re.search(warned, pooled.stdout.str())


def test_faulthandler_timeout_names_the_pooled_test(pytester: pytest.Pytester) -> None:
    """A fresh interpreter: faulthandler writes to the process's real stderr."""
    pytester.makeini("[pytest]\nfaulthandler_timeout = 0.2\n")
    pytester.makepyfile(
        test_slow="""
        import time
        import pytest

        pytestmark = pytest.mark.dynpool(2)

        def test_slow():
            time.sleep(2)  # ten times the timeout: the dump happens while it sleeps

        def test_quick():
            pass
        """
    )
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "--dynpool-workers", "2", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "test_slow.py::test_slow:" in process.stderr
    assert "Timeout (0:00:00.200000)!" in process.stderr
    assert "test_quick" not in process.stderr
