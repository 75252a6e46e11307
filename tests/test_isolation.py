"""Each pooled item's output, logs and warnings are its own, exactly as plain pytest reports them.

The suites hold their tests at barriers, so that eight of them are in flight at
once whenever the pool runs them; with the plugin off the barriers are skipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

CONFTEST = """
import threading
import pytest

_barrier = threading.Barrier(8, timeout=30)

class Together:
    '''Wait until 8 tests are in flight (only when the pool runs them).'''
    def __init__(self, pooled):
        self.pooled = pooled
    def __call__(self):
        if self.pooled:
            _barrier.wait()
    def __repr__(self):
        return "together"

@pytest.fixture
def together(request):
    return Together(request.config.pluginmanager.has_plugin("dynpool"))
"""

# 24 items, 3 rounds of 8 on 8 workers: 16 noisy ones (a quarter fail) and two
# each of capsys, caplog, recwarn and pytest.warns, interleaved.
KINDS = ["noisy", "noisy", "capsys", "noisy", "caplog", "noisy", "recwarn", "warns"] * 3
FAILING = {1, 5, 11, 19}
NOISY_SUITE = f"""
import logging
import sys
import warnings
import pytest

pytestmark = pytest.mark.dynpool(8)
KINDS = {KINDS!r}
FAILING = {FAILING!r}
log = logging.getLogger("noisy")

@pytest.mark.parametrize("n", range(len(KINDS)))
def test_item(n, together, request):
    kind, tag = KINDS[n], f"<{{n}}>"
    if kind == "noisy":
        print("out 1", tag)
        together()
        log.warning("log 1 %s", tag)
        print("err 1", tag, file=sys.stderr)
        log.error("log 2 %s", tag)
        together()
        log.warning("log 3 %s", tag)
        print("out 2", tag)
        log.critical("log 4 %s", tag)
        print("err 2", tag, file=sys.stderr)
        assert n not in FAILING, f"failing on purpose {{tag}}"
    elif kind == "capsys":
        capsys = request.getfixturevalue("capsys")
        print("read", tag)
        together()
        print("err read", tag, file=sys.stderr)
        together()
        assert capsys.readouterr() == ("read " + tag + "\\n", "err read " + tag + "\\n")
        print("left", tag)
    elif kind == "caplog":
        caplog = request.getfixturevalue("caplog")
        caplog.set_level(logging.INFO)
        together()
        log.info("info %s", tag)
        together()
        log.debug("debug is below the level %s", tag)
        assert [r.getMessage() for r in caplog.records] == ["info " + tag]
    elif kind == "recwarn":
        recwarn = request.getfixturevalue("recwarn")
        together()
        warnings.warn(UserWarning("recorded " + tag))
        together()
        assert [str(w.message) for w in recwarn] == ["recorded " + tag]
    else:
        together()
        with pytest.warns(UserWarning) as record:
            warnings.warn(UserWarning("expected " + tag))
            together()
        assert [str(w.message) for w in record] == ["expected " + tag]
"""


def _run(pytester: pytest.Pytester, *args: str, plugin: bool) -> pytest.RunResult:
    switch = ("--dynpool-workers", "8") if plugin else ("-p", "no:dynpool")
    return pytester.runpytest(*switch, *args)


def _testcases(path: str) -> dict[str, dict[str, str]]:
    """junitxml: per test name, the text of each child element (failure, system-out, ...)."""
    cases: dict[str, dict[str, str]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        children = {child.tag: (child.text or "") for child in case}
        cases[case.attrib["name"]] = children
    return cases


SECTION_HEADER = re.compile(r"^_{3,} (\S.*?) _{3,}$")


def _terminal_sections(lines: list[str]) -> dict[str, str]:
    """The failure and -rA 'passes' blocks of the terminal report, per test title."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        header = SECTION_HEADER.match(line)
        if header:
            current = blocks.setdefault(header.group(1), [])
        elif line.startswith(("=====", "- generated xml file")):
            current = None
        elif current is not None:
            current.append(line)
    return {title: "\n".join(body) for title, body in blocks.items()}


def test_noisy_concurrent_tests_report_only_their_own_lines(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\njunit_logging = all\n")
    pytester.makepyfile(test_noisy=NOISY_SUITE)
    pooled = _run(pytester, "-rA", "--junitxml=pooled.xml", plugin=True)
    pooled.assert_outcomes(passed=20, failed=4)
    assert "pool: 8 workers, peak 8 in flight" in pooled.stdout.str()

    cases = _testcases(str(pytester.path / "pooled.xml"))
    assert len(cases) == len(KINDS)
    for n, kind in enumerate(KINDS):
        tag = f"<{n}>"
        case = cases[f"test_item[{n}]"]
        for text in case.values():  # nothing of any other test, anywhere
            assert set(re.findall(r"<\d+>", text)) <= {tag}, (n, text)
        if kind == "noisy":
            assert case["system-out"].count(tag) == 2 + 4  # 2 prints, 4 log lines
            assert case["system-err"].count(tag) == 2
            for line in ("out 1", "out 2", "log 1", "log 2", "log 3", "log 4"):
                assert f"{line} {tag}" in case["system-out"]
            assert ("failure" in case) == (n in FAILING)
        elif kind == "capsys":
            assert case["system-out"].count(tag) == 1
            assert f"left {tag}" in case["system-out"]
            assert tag not in case.get("system-err", "")

    sections = _terminal_sections(pooled.outlines)
    for n, kind in enumerate(KINDS):
        body = sections.get(f"test_item[{n}]", "")
        assert set(re.findall(r"<\d+>", body)) <= {f"<{n}>"}, (n, body)
        if kind == "noisy":
            assert body.count(f"<{n}>") >= 8  # 4 prints and 4 log lines, at least


def test_noisy_suite_reports_the_same_sections_as_plain_pytest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\njunit_logging = all\n")
    pytester.makepyfile(test_noisy=NOISY_SUITE)
    plain = _run(pytester, "-rA", "--junitxml=plain.xml", plugin=False)
    pooled = _run(pytester, "-rA", "--junitxml=pooled.xml", plugin=True)
    assert pooled.ret == plain.ret == pytest.ExitCode.TESTS_FAILED

    def without_times(cases: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        return cases  # junitxml keeps durations in attributes, not in the compared texts

    assert without_times(_testcases(str(pytester.path / "pooled.xml"))) == without_times(
        _testcases(str(pytester.path / "plain.xml"))
    )
    pooled_sections = _terminal_sections(pooled.outlines)
    plain_sections = _terminal_sections(plain.outlines)
    assert set(pooled_sections) == set(plain_sections)
    for title, body in plain_sections.items():
        assert pooled_sections[title] == body, title


WARNINGS_SUITE = """
import warnings
import pytest

pytestmark = pytest.mark.dynpool(8)

@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize("n", range(4))
def test_strict(n, together):
    together()
    with pytest.raises(UserWarning):
        warnings.warn(UserWarning(f"an error here <{n}>"))
    together()

@pytest.mark.parametrize("n", range(4))
def test_lenient(n, together):
    together()
    warnings.warn(UserWarning(f"only a warning <{n}>"))
    together()
    warnings.warn(DeprecationWarning(f"deprecated <{n}>"))
"""


def test_warning_filters_and_summary_are_per_item(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    # In-process runs inherit this suite's "error" filter: start from pytest's defaults.
    pytester.makeini("[pytest]\nfilterwarnings =\n    default::UserWarning\n")
    pytester.makepyfile(test_warn=WARNINGS_SUITE)
    plain = _run(pytester, plugin=False)
    pooled = _run(pytester, plugin=True)
    pooled.assert_outcomes(passed=8, warnings=8)
    plain.assert_outcomes(passed=8, warnings=8)
    summary = _terminal_sections(pooled.outlines)  # empty: no failures
    assert summary == {}
    text = pooled.stdout.str()
    for n in range(4):
        # Each warning is listed under the test that raised it, and only there.
        listed = rf"test_warn.py::test_lenient\[{n}\]\n(.*\n)*?.*only a warning <{n}>"
        assert re.search(listed, text)
        assert f"an error here <{n}>" not in text


THREADS_SUITE = """
import logging
import threading
import pytest
from conftest import late, printed

pytestmark = pytest.mark.dynpool(4)

@pytest.mark.parametrize("n", range(4))
def test_thread_output(n, together):
    def work():
        print(f"from a thread <{n}>")
        logging.getLogger("t").warning("thread log <%s>", n)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    together()
    assert n != 2

def test_thread_outlives_test():
    def later():
        late.wait(30)  # set once this test has been reported
        print("too late for any test <late>")
        printed.set()
    threading.Thread(target=later, daemon=True).start()

@pytest.mark.parametrize("n", range(3))
def test_after(n):
    assert printed.wait(30)
    assert n != 0

def test_thread_error():
    def boom():
        raise ValueError("raised in a thread <boom>")
    thread = threading.Thread(target=boom)
    thread.start()
    thread.join()
"""

LATE_CONFTEST = """
late, printed = threading.Event(), threading.Event()

def pytest_runtest_logfinish(nodeid):
    if nodeid.endswith("test_thread_outlives_test"):
        late.set()
"""


def test_threads_started_by_a_test_belong_to_it(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.replace("Barrier(8", "Barrier(4") + LATE_CONFTEST)
    pytester.makeini(
        "[pytest]\nfilterwarnings =\n    default::pytest.PytestUnhandledThreadExceptionWarning\n"
    )
    pytester.makepyfile(test_threads=THREADS_SUITE)
    result = _run(pytester, "-rA", "--dynpool-workers", "4", plugin=True)
    result.assert_outcomes(passed=7, failed=2, warnings=1)
    sections = _terminal_sections(result.outlines)
    for n in range(4):
        body = sections[f"test_thread_output[{n}]"]
        assert set(re.findall(r"<\w+>", body)) == {f"<{n}>"}, body
        assert f"from a thread <{n}>" in body
        assert f"thread log <{n}>" in body
    for title, body in sections.items():
        assert "<late>" not in body, title
    text = result.stdout.str()
    assert "dynpool: output of threads outside any test" in text
    assert "too late for any test <late>" in text
    # The thread's exception is a warning of the test whose thread raised it.
    warned = r"test_threads.py::test_thread_error\n.*PytestUnhandledThreadExceptionWarning"
    assert re.search(warned, text)


LIVE_LOG_SUITE = """
import logging
import pytest

pytestmark = pytest.mark.dynpool(4)

@pytest.fixture
def noisy_fixture(request):
    logging.getLogger("live").warning("setup of <%s>", request.node.callspec.id)
    yield
    logging.getLogger("live").warning("teardown of <%s>", request.node.callspec.id)

@pytest.mark.parametrize("n", range(8))
def test_live(n, noisy_fixture, together):
    together()
    logging.getLogger("live").warning("call of <%s>", n)
"""


def test_live_logs_are_written_under_their_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.replace("Barrier(8", "Barrier(4"))
    pytester.makeini("[pytest]\nlog_cli = true\nlog_cli_level = WARNING\n")
    pytester.makepyfile(test_live=LIVE_LOG_SUITE)
    result = _run(pytester, "--dynpool-workers", "4", plugin=True)
    result.assert_outcomes(passed=8)
    current: str | None = None
    seen: dict[str, list[str]] = {}
    for line in result.outlines:
        start = re.match(r"^test_live.py::test_live\[(\d+)\]", line)
        if start:
            current = start.group(1)
            continue
        tags = re.findall(r"<(\d+)>", line)
        if tags:
            assert tags == [current], (line, current)
            seen.setdefault(tags[0], []).append(line)
    for n in range(8):
        phases = " ".join(seen[str(n)])
        for phase in ("setup of", "call of", "teardown of"):
            assert phase in phases
