"""Tests that replace, redirect, close or bypass ``sys.stdout`` on the pool, against plain pytest.

Each suite is run with the plugin off and on; pooled tests meet at barriers so
that they overlap (with the plugin off the barriers are skipped).
"""

from __future__ import annotations

import re
import sys

import pytest

from .conftest import outcomes_by_nodeid
from .test_isolation import CONFTEST, _terminal_sections
from .test_isolation_modes import _same_report

MEET_CONFTEST = (
    CONFTEST
    + """
_pairs = {}
_pairs_lock = threading.Lock()

@pytest.fixture
def meet(request):
    '''meet(key): wait for the one other test that meets at ``key`` (only on the pool).'''
    pooled = request.config.pluginmanager.has_plugin("dynpool")
    def wait(key):
        if pooled:
            with _pairs_lock:
                barrier = _pairs.setdefault(key, threading.Barrier(2, timeout=30))
            barrier.wait()
    return wait
"""
)


def _both(
    pytester: pytest.Pytester, *args: str, workers: int = 8
) -> tuple[pytest.RunResult, pytest.RunResult]:
    plain = pytester.runpytest("-p", "no:dynpool", *args)
    pooled = pytester.runpytest("--dynpool-workers", str(workers), *args)
    return plain, pooled


IDENTITY_SUITE = """
import io
import pickle
import sys
import pytest

pytestmark = pytest.mark.dynpool(8)
AT_IMPORT = sys.stdout, sys.stderr
BUFFERS_AT_IMPORT = sys.stdout.buffer, sys.stderr.buffer

class PrintLogger:
    '''structlog's pattern: pickled by naming the stream it writes to.'''
    def __init__(self, file=None):
        self.file = file or AT_IMPORT[0]
    def __getstate__(self):
        if self.file is AT_IMPORT[0]:
            return "stdout"
        if self.file is AT_IMPORT[1]:
            return "stderr"
        raise pickle.PicklingError("only loggers to sys.stdout and sys.stderr")
    def __setstate__(self, state):
        self.file = AT_IMPORT[0] if state == "stdout" else AT_IMPORT[1]

@pytest.mark.parametrize("n", range(8))
def test_streams_are_the_session_streams(n, together):
    together()
    assert (sys.stdout, sys.stderr) == AT_IMPORT
    assert sys.stdout is AT_IMPORT[0] and sys.stderr is AT_IMPORT[1]
    assert isinstance(sys.stdout, io.TextIOBase)
    assert type(sys.stdout).__name__ == type(AT_IMPORT[0]).__name__
    assert sys.stdout.buffer is BUFFERS_AT_IMPORT[0]
    assert sys.stderr.buffer is BUFFERS_AT_IMPORT[1]
    logger = pickle.loads(pickle.dumps(PrintLogger(sys.stdout)))
    assert logger.file is sys.stdout
    print(f"printed <{n}>")
    sys.stdout.buffer.write(f"bytes <{n}>\\n".encode())
    together()
    assert n % 4, "fails, to show its output"
"""


@pytest.mark.parametrize("mode", ["--capture=fd", "--capture=sys", "--capture=tee-sys", "-s"])
def test_sys_stdout_is_the_object_plain_pytest_gives(pytester: pytest.Pytester, mode: str) -> None:
    """Issue 16.1: the same object (and type) at import and in the test, in every mode."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_identity=IDENTITY_SUITE)
    plain, pooled = _both(pytester, "-rA", mode)
    plain.assert_outcomes(passed=6, failed=2)
    _same_report(plain, pooled)


REDIRECT_SUITE = """
import contextlib
import io
import sys
import pytest

pytestmark = pytest.mark.dynpool(8)

@pytest.mark.parametrize("n", range(4))
def test_redirect(n, together):
    with contextlib.redirect_stdout(io.StringIO()) as out, \\
            contextlib.redirect_stderr(io.StringIO()) as err:
        together()
        print(f"redirected <{n}>")
        print(f"redirected err <{n}>", file=sys.stderr)
        together()
    assert out.getvalue() == f"redirected <{n}>\\n"
    assert err.getvalue() == f"redirected err <{n}>\\n"
    print(f"after the redirect <{n}>")
    assert n != 1

@pytest.mark.parametrize("n", range(4, 7))
def test_print(n, together):
    together()
    print(f"plain print <{n}>")
    together()
    assert n != 5

def test_assigns_and_never_restores(together):
    together()
    sys.stdout = io.StringIO()
    print("into a StringIO <7>")
    together()

@pytest.mark.parametrize("n", range(8, 12))
def test_later(n):
    print(f"a later test prints <{n}>")
    assert n != 9
"""


def test_redirect_stdout_and_assignments_are_per_test(pytester: pytest.Pytester) -> None:
    """Issue 11.2: nothing leaks into other tests, and nothing stays redirected afterwards."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_redirect=REDIRECT_SUITE)
    plain, pooled = _both(pytester, "-rA")
    plain.assert_outcomes(passed=9, failed=3)
    _same_report(plain, pooled)
    sections = _terminal_sections(pooled.outlines)
    for n in (8, 9, 10, 11):
        assert f"a later test prints <{n}>" in sections[f"test_later[{n}]"]


DOCTEST_SUITE = """
import sys
import pytest

pytestmark = pytest.mark.dynpool(8)

def shout(n):
    '''
    >>> getfixture("meet")(0)
    >>> for _ in range(3): print("doctest line")
    doctest line
    doctest line
    doctest line
    >>> getfixture("meet")(1)
    >>> shout(1)
    SHOUT 1
    '''
    print(f"SHOUT {n}")

def whisper(n):
    '''
    >>> getfixture("meet")(2)
    >>> whisper(2)
    whisper 2
    >>> getfixture("meet")(3)
    >>> whisper(3)  # fails on purpose: the report must show only this doctest's output
    WHISPER 3
    '''
    print(f"whisper {n}")

@pytest.mark.parametrize("n", range(4))
def test_noise(n, meet):
    print(f"noise before <{n}>")
    meet(n)
    for _ in range(20):
        print(f"noise <{n}>")
    print(f"noise to stderr <{n}>", file=sys.stderr)
    assert n != 3
"""


def test_doctests_in_a_marked_module(pytester: pytest.Pytester) -> None:
    """Issues 11.3 and 16.6: doctest's stdout swap and its shared runner, beside other tests."""
    pytester.makeconftest(MEET_CONFTEST)
    pytester.makepyfile(test_doc=DOCTEST_SUITE)
    plain, pooled = _both(pytester, "-rA", "--doctest-modules")
    plain.assert_outcomes(passed=4, failed=2)
    _same_report(plain, pooled)
    assert "dynpool: 1 jobs, 6 pooled items" in pooled.stdout.str()


BYTES_SUITE = """
import sys
import pytest

pytestmark = pytest.mark.dynpool(8)

@pytest.mark.parametrize("n", range(4))
def test_bytes(n, together):
    together()
    sys.stdout.buffer.write(b"not utf-8: \\xff\\xfe <%d>\\n" % n)
    sys.stderr.buffer.write(b"\\xc3 half a character <%d>\\n" % n)
    together()
    assert n % 2, "a real failure, whose reason must stay"
"""


def test_bytes_that_are_not_utf8(pytester: pytest.Pytester) -> None:
    """Issue 11.4: replacement characters, as plain pytest, never a UnicodeDecodeError."""
    pytester.makeconftest(CONFTEST.replace("Barrier(8", "Barrier(4"))
    pytester.makepyfile(test_bytes=BYTES_SUITE)
    plain, pooled = _both(pytester, "-rA")
    plain.assert_outcomes(passed=2, failed=2)
    _same_report(plain, pooled)
    assert "UnicodeDecodeError" not in pooled.stdout.str()
    assert "a real failure, whose reason must stay" in pooled.stdout.str()


FORK_SUITE = """
import multiprocessing
import sys
import pytest

pytestmark = pytest.mark.dynpool(2)

def child(n):
    print(f"printed by the child <{n}>")
    print(f"child's stderr <{n}>", file=sys.stderr)

@pytest.mark.parametrize("n", range(2))
def test_fork(n, together):
    together()
    process = multiprocessing.get_context("fork").Process(target=child, args=(n,))
    process.start()
    process.join()
    assert process.exitcode == 0
    print(f"printed by the test <{n}>")
    together()
    assert n == 0
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_prints_of_forked_children_are_reported(pytester: pytest.Pytester) -> None:
    """Issue 11.9: what a child made by fork prints is in the test's report, as in plain pytest."""
    pytester.makeconftest(CONFTEST.replace("Barrier(8", "Barrier(2"))
    # Python 3.12+ warns about fork in a process with threads: the pool has threads.
    pytester.makeini("[pytest]\nfilterwarnings =\n    ignore::DeprecationWarning\n")
    pytester.makepyfile(test_fork=FORK_SUITE)
    plain, pooled = _both(pytester, "-rA", workers=2)
    plain.assert_outcomes(passed=1, failed=1)
    _same_report(plain, pooled)
    sections = _terminal_sections(pooled.outlines)
    for n in range(2):
        assert f"printed by the child <{n}>" in sections[f"test_fork[{n}]"]
        assert f"child's stderr <{n}>" in sections[f"test_fork[{n}]"]


SETUP_SHOW_SUITE = """
import pytest

pytestmark = pytest.mark.dynpool(4)

@pytest.fixture(scope="module")
def shared():
    return "shared"

@pytest.fixture(params=["a", "b", "c", "d"])
def letter(request, together):
    together()  # all four are in setup at once
    return request.param

def test_letter(letter, shared, together):
    together()
"""


def _setup_show_lines(result: pytest.RunResult) -> list[str]:
    lines = []
    for line in result.outlines:
        line = re.sub(r"\s*[.EF]$", "", line.rstrip())  # the progress character
        if re.match(r"^\s+(SETUP|TEARDOWN|test_show\.py::)", line):
            lines.append(line)
    return lines


@pytest.mark.parametrize("option", ["--setup-show", "--setup-plan"])
def test_setup_show_lines_are_whole_and_right(pytester: pytest.Pytester, option: str) -> None:
    """Issue 11.18: no interleaved lines, each item's own parameter, no pass under --setup-plan."""
    pytester.makeconftest(CONFTEST.replace("Barrier(8", "Barrier(4"))
    pytester.makepyfile(test_show=SETUP_SHOW_SUITE)
    plain, pooled = _both(pytester, option, workers=4)
    assert pooled.ret == plain.ret
    assert pooled.parseoutcomes() == plain.parseoutcomes()
    plain_lines, pooled_lines = _setup_show_lines(plain), _setup_show_lines(pooled)
    assert sorted(pooled_lines) == sorted(plain_lines)
    for letter in "abcd":
        # Each item's lines are one block, in pytest's order.
        block = [line for line in pooled_lines if f"['{letter}']" in line or f"[{letter}]" in line]
        start = pooled_lines.index(block[0])
        assert pooled_lines[start : start + 3] == block, block
        assert block[0].strip() == f"SETUP    F letter (fixtures used: together)['{letter}']"
        assert block[2].strip() == f"TEARDOWN F letter['{letter}']"
    row = next(line for line in pooled.outlines if line.startswith("test_show.py "))
    passed = 0 if option == "--setup-plan" else 4
    assert row.split()[3] == str(passed), row  # job, cap, items, passed


@pytest.mark.parametrize("quiet", ["-q", "-qq"])
def test_collect_only_quiet_prints_what_plain_pytest_prints(
    pytester: pytest.Pytester, quiet: str
) -> None:
    """Issue 11.19: no extra 'dynpool: N jobs' line under --co -q: tools parse it."""
    pytester.makepyfile(
        test_quiet="""
        import pytest

        pytestmark = pytest.mark.dynpool(2)

        @pytest.mark.parametrize("n", range(3))
        def test_a(n):
            pass
        """
    )
    plain, pooled = _both(pytester, "--co", quiet, "-p", "no:warnings")

    def without_time(lines: list[str]) -> list[str]:
        return [re.sub(r" in [\d.]+s", "", line) for line in lines]

    assert without_time(pooled.outlines) == without_time(plain.outlines)
    assert not any("dynpool" in line for line in pooled.outlines)


CLOSE_SUITE = """
import sys
import pytest

pytestmark = pytest.mark.dynpool(4)

def test_close(together):
    print("before closing")
    together()
    sys.stdout.close()
    together()

@pytest.mark.parametrize("n", range(3))
def test_beside(n, together):
    together()
    print(f"still printing <{n}>")
    together()
    assert n != 2
"""


def test_closing_sys_stdout_keeps_the_run(pytester: pytest.Pytester) -> None:
    """Issue 11.21: outcomes and the summary print, as in plain pytest.

    Plain pytest fails the closing test and errors its teardown; it errors every
    later test too, as they share the closed stream: on the pool only the test
    that closed it is hurt (decision where the issue was silent).
    """
    pytester.makeconftest(CONFTEST.replace("Barrier(8", "Barrier(4"))
    pytester.makepyfile(test_close=CLOSE_SUITE)
    plain = pytester.runpytest_subprocess("-p", "no:dynpool", "test_close.py::test_close")
    plain.stdout.fnmatch_lines(["test_close.py FE*", "*= 1 failed, *1 error in *"])
    pooled = pytester.runpytest("--dynpool-workers", "4", "-rA")
    closing = "test_close.py::test_close"
    assert outcomes_by_nodeid(pooled)[closing] == [
        ("call", "failed"),
        ("setup", "passed"),
        ("teardown", "failed"),
    ]
    pooled.assert_outcomes(passed=2, failed=2, errors=1)
    text = pooled.stdout.str()
    assert "INTERNALERROR" not in text
    assert "short test summary info" in text
    assert "= dynpool =" in text
    sections = _terminal_sections(pooled.outlines)
    assert "still printing <2>" in sections["test_beside[2]"]


DUP2_SUITE = """
import os
import tempfile
import threading
import pytest

pytestmark = pytest.mark.dynpool(2)
swapped_first, swapped_second, restored_first = (threading.Event() for _ in range(3))

@pytest.mark.parametrize("role", ["first", "second"])
def test_swaps_fd_1(role, request):
    '''CliRunner(capture="fd")'s dance, interleaved so that fd 1 ends on a deleted file.'''
    pooled = request.config.pluginmanager.has_plugin("dynpool")

    def then(done, wait_for):
        if pooled:
            done.set()
            assert wait_for.wait(30)

    with tempfile.TemporaryFile() as target:
        if role == "second" and pooled:
            assert swapped_first.wait(30)
        saved = os.dup(1)
        os.dup2(target.fileno(), 1)
        os.write(1, f"written by {role}\\n".encode())
        if role == "first":
            then(swapped_first, swapped_second)
        else:
            then(swapped_second, restored_first)
        os.dup2(saved, 1)  # the second puts back the first's file: it saved it
        os.close(saved)
        if role == "first":
            restored_first.set()
        target.seek(0)
        assert target.read() == f"written by {role}\\n".encode()
"""


def test_a_test_that_swaps_fd_1_leaves_the_terminal_alive(pytester: pytest.Pytester) -> None:
    """Issue 16.5: the reporter writes to its own fd; fds 1 and 2 come back for the summary."""
    pytester.makepyfile(test_dup=DUP2_SUITE)
    plain = pytester.runpytest_subprocess("-p", "no:dynpool", "-p", "no:cacheprovider")
    plain.assert_outcomes(passed=2)
    pooled = pytester.runpytest_subprocess(
        "--dynpool-workers", "2", "-p", "no:cacheprovider", "-rA"
    )
    pooled.assert_outcomes(passed=2)
    text = pooled.stdout.str()
    assert "= dynpool =" in text
    assert "PASSED test_dup.py::test_swaps_fd_1[first]" in text
    assert "PASSED test_dup.py::test_swaps_fd_1[second]" in text


def test_bytes_are_per_test_when_the_plugin_is_loaded_late(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded by a conftest, the plugin comes after pytest made its capture streams: their
    buffers cannot route, so in pooled tests ``sys.stdout.buffer`` is a routing stand-in."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(
        CONFTEST.replace("Barrier(8", "Barrier(4")
        + '\npytest_plugins = ["pytest_dynpool.plugin"]\n'
    )
    pytester.makepyfile(
        test_late="""
        import sys
        import pytest

        pytestmark = pytest.mark.dynpool(4)

        @pytest.mark.parametrize("n", range(4))
        def test_bytes(n, together):
            together()
            sys.stdout.buffer.write(b"bytes of <%d>\\n" % n)
            together()
            assert sys.stdout.buffer is sys.stdout.buffer
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4", "-rP")
    result.assert_outcomes(passed=4)
    sections = _terminal_sections(result.outlines)
    for n in range(4):
        assert sections[f"test_bytes[{n}]"].strip().splitlines()[-1] == f"bytes of <{n}>"
        assert set(re.findall(r"<\d+>", sections[f"test_bytes[{n}]"])) == {f"<{n}>"}


STDIN_SUITE = """
import io
import sys
import pytest

pytestmark = pytest.mark.dynpool(4)

@pytest.mark.parametrize("n", range(3))
def test_own_input(n, together):
    saved = sys.stdin
    sys.stdin = io.StringIO(f"typed into <{n}>\\n")  # CliRunner(input=...) does this
    together()
    assert input() == f"typed into <{n}>"
    together()
    sys.stdin = saved

def test_reads_the_terminal(together):
    together()
    with pytest.raises(OSError, match="reading from stdin while output is captured"):
        input()
    together()
"""


def test_sys_stdin_is_per_test(pytester: pytest.Pytester) -> None:
    """What CliRunner does to ``sys.stdin`` stays in its test; reading the terminal fails as
    in plain pytest (rather than wait for it)."""
    pytester.makeconftest(CONFTEST.replace("Barrier(8", "Barrier(4"))
    pytester.makepyfile(test_stdin=STDIN_SUITE)
    plain, pooled = _both(pytester, "-rA", workers=4)
    plain.assert_outcomes(passed=4)
    _same_report(plain, pooled)
