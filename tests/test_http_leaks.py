"""Issue 11, item 11: a response a test leaves open gives its job slot back when the test ends.

Before, an unclosed ``client.stream(...)`` kept one of the job's request slots for
the rest of the session: every later request of the job waited the pool
timeout and failed, long after the leaking test had passed. Now the slot comes
back at the end of the test that opened it, and that test gets a warning.
"""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest


@pytest.fixture(scope="session")
def dynpool_base_url(make_httpserver):
    # A small body: the server has sent it all even while the client never reads it.
    make_httpserver.expect_request("/data").respond_with_data("x" * 100)
    return make_httpserver.url_for("/")


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

SUITE = """
import httpx
import pytest

{mark}

LEFT_OPEN = []  # a reference, so that nothing closes the responses behind our back
# Fail within seconds, not after the default 30 s, while the slot stays taken.
SHORT = httpx.Timeout(10.0, pool=2.0)


def test_leaks(dynpool_client):
    stream = dynpool_client.stream("GET", "/data")
    LEFT_OPEN.append(stream)  # collected, it would close the response itself
    assert stream.__enter__().status_code == 200  # and never left


def test_after(dynpool_client):
    assert dynpool_client.get("/data", timeout=SHORT).status_code == 200


def test_closes_its_stream(dynpool_client):
    with dynpool_client.stream("GET", "/data", timeout=SHORT) as response:
        response.read()
"""

MARKS = {
    "pooled": 'pytestmark = pytest.mark.dynpool(1, job="api")',
    "unmarked": "",
}


def _run(pytester: pytest.Pytester, mark: str, *args: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nfilterwarnings =\n    default\n")
    pytester.makepyfile(test_leak=SUITE.format(mark=mark))
    return pytester.runpytest("-p", "no:randomly", *args)


@pytest.mark.parametrize("where", MARKS)
def test_a_leaked_stream_gives_its_slot_back_when_its_test_ends(
    pytester: pytest.Pytester, where: str
) -> None:
    result = _run(pytester, MARKS[where])
    result.assert_outcomes(passed=3, warnings=1)
    job = "api" if where == "pooled" else "unmarked"
    result.stdout.fnmatch_lines(
        [
            "*= warnings summary =*",
            "test_leak.py::test_leaks",
            f"*UnclosedResponseWarning: 1 response of dynpool job '{job}' was still open when "
            "the test ended*",
        ]
    )


def test_with_the_pool_off_too(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        'pytestmark = [pytest.mark.dynpool(1, job="api"), '
        'pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")]',
        "-p",
        "no:dynpool",
        "-p",
        "pytest_dynpool.fixtures",
    )
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(["test_leak.py::test_leaks", "*UnclosedResponseWarning*"])


def test_with_warnings_as_errors_the_leak_fails_the_leaking_test(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, MARKS["pooled"], "-W", "error::pytest.PytestWarning")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["ERROR test_leak.py::test_leaks - pytest_dynpool.http.plugin.Unclosed*"]
    )


def test_an_async_test_s_leaked_stream_does_not_hold_its_slot_either(
    pytester: pytest.Pytester,
) -> None:
    # Here the test's event loop closes the stream's async generator as the loop shuts
    # down, which gives the slot back before the test ends; whichever comes first, the
    # next test of the job must get the slot.
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nfilterwarnings =\n    default\n")
    pytester.makepyfile(
        test_leak="""
        import httpx
        import pytest

        pytestmark = [pytest.mark.anyio, pytest.mark.dynpool(1, job="api")]
        LEFT_OPEN = []


        async def test_leaks(dynpool_async_client):
            stream = dynpool_async_client.stream("GET", "/data")
            LEFT_OPEN.append(stream)
            assert (await stream.__aenter__()).status_code == 200


        async def test_after(dynpool_async_client):
            timeout = httpx.Timeout(10.0, pool=2.0)
            assert (await dynpool_async_client.get("/data", timeout=timeout)).status_code == 200
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
