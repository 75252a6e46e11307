"""pytest-asyncio: async tests and fixtures on the pool report what plain pytest reports.

pytest-asyncio swaps the shared ``FixtureDef.func`` while it sets an async fixture
up, and runs tests on an event loop that a wider ``loop_scope`` shares: the pool
keeps the swap per thread, and lets tests on one shared loop take turns on it.
"""

from __future__ import annotations

import pytest

from ..conftest import outcomes_by_nodeid

pytest.importorskip("pytest_asyncio")

SUITE = """
import asyncio
import threading
import pytest
import pytest_asyncio

pytestmark = [pytest.mark.dynpool(4), pytest.mark.asyncio(loop_scope="{loop_scope}")]
_entered = {{}}
_lock = threading.Lock()

@pytest_asyncio.fixture(loop_scope="{loop_scope}")
async def resource(request):
    await asyncio.sleep(0.01)
    yield request.node.name
    await asyncio.sleep(0.01)

@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def module_loop():
    yield asyncio.get_running_loop()

@pytest.mark.parametrize("n", range(12))
async def test_async(n, resource, module_loop, request):
    await asyncio.sleep(0.02)
    assert resource == request.node.name
    if "{loop_scope}" == "module":
        assert asyncio.get_running_loop() is module_loop
    else:
        assert asyncio.get_running_loop() is not module_loop

@pytest.mark.parametrize("n", range(2))
async def test_fails(n, resource):
    await asyncio.sleep(0.01)
    assert n == 0
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
@pytest.mark.parametrize("loop_scope", ["function", "module"])
def test_async_tests_and_fixtures_match_plain_pytest(
    pytester: pytest.Pytester, mode: str, loop_scope: str
) -> None:
    pytester.makeini(
        f"""
        [pytest]
        asyncio_mode = {mode}
        asyncio_default_fixture_loop_scope = function
        markers =
            dynpool: registered so that -p no:dynpool runs without warnings
        """
    )
    pytester.makepyfile(test_async=SUITE.format(loop_scope=loop_scope))
    args = ("-p", "no:randomly")
    plain = pytester.runpytest("-p", "no:dynpool", *args)
    plain.assert_outcomes(passed=13, failed=1)
    pooled = pytester.runpytest("--dynpool-workers", "4", *args)
    pooled.stdout.fnmatch_lines(["*= dynpool =*"])
    assert "already running" not in pooled.stdout.str()
    assert outcomes_by_nodeid(pooled) == outcomes_by_nodeid(plain)
    assert pooled.ret == plain.ret
