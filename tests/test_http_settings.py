"""The HTTP fixtures' settings and their wiring to the pool, on ordinary inner runs.

What a test sees of its job (``dynpool_job``), where the base URL comes from,
rate options and their errors, the fixtures with the pool off, and the
scheduler following an adaptive job's effective cap. The load behaviour against
a fragile endpoint is in ``test_http_client.py``.
"""

from __future__ import annotations

import pytest


def test_dynpool_job_describes_the_items_job(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_jobinfo="""
        import pytest


        @pytest.mark.dynpool(3, job="search", rate="600/m", adaptive=True)
        def test_marked(dynpool_job):
            assert (dynpool_job.name, dynpool_job.cap, dynpool_job.effective_cap) == (
                "search", 3, 3)
            assert dynpool_job.rate.per_second == 10.0
            assert dynpool_job.adaptive is not None
            assert dynpool_job.stats.requests == 0


        @pytest.mark.dynpool(2)
        def test_default_name(dynpool_job):
            assert (dynpool_job.name, dynpool_job.cap, dynpool_job.rate) == (
                "test_jobinfo.py::test_default_name", 2, None)
            assert dynpool_job.adaptive is None


        def test_unmarked(dynpool_job):
            assert (dynpool_job.name, dynpool_job.cap, dynpool_job.effective_cap) == (
                "unmarked", 1, 1)
        """
    )
    result = pytester.runpytest(
        "--dynpool-workers", "4", "--dynpool-rate", "search=10/s", "--dynpool-rate", "ghost=1/s"
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "search *3, rate 10/s (declared 600/m), adaptive *1 *1 *",
            "warning: --dynpool-cap/dynpool_caps or --dynpool-rate/dynpool_rates name no "
            "selected job: ghost",
        ]
    )
    result.stdout.no_fnmatch_line("*= dynpool http =*")  # no request went through a client


@pytest.mark.parametrize(
    ("args", "env", "ini", "expected"),
    [
        (["--dynpool-base-url", "http://flag"], "http://env", "http://ini", "http://flag"),
        ([], "http://env", "http://ini", "http://env"),
        ([], None, "http://ini", "http://ini"),
        ([], None, None, ""),
    ],
)
def test_base_url_precedence(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str | None,
    ini: str | None,
    expected: str,
) -> None:
    if env is None:
        monkeypatch.delenv("DYNPOOL_BASE_URL", raising=False)
    else:
        monkeypatch.setenv("DYNPOOL_BASE_URL", env)
    if ini is not None:
        pytester.makeini(f"[pytest]\ndynpool_base_url = {ini}\n")
    pytester.makepyfile(
        test_url=f"""
        def test_url(dynpool_base_url, dynpool_client):
            assert dynpool_base_url == {expected!r}
            assert str(dynpool_client.base_url).rstrip("/") == {expected!r}
        """
    )
    pytester.runpytest(*args).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "args",
    [
        ["--dynpool-rate", "search=fast"],
        ["--dynpool-rate", "10/s"],
        ["-o", "dynpool_rates=search=0/s"],
    ],
)
def test_bad_rate_override_is_a_usage_error(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makepyfile(test_x="def test_x():\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dynpool-rate / dynpool_rates: expected JOB=RATE*10/s*"])


def test_same_job_with_two_rates_names_both_places(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_two="""
        import pytest

        @pytest.mark.dynpool(2, job="api", rate="10/s")
        def test_a():
            pass

        @pytest.mark.dynpool(2, job="api")
        def test_b():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            'ERROR: dynpool job "api" is declared with two different caps: max_concurrency=2, '
            "rate='10/s' at test_two.py::test_a and max_concurrency=2 at test_two.py::test_b*"
        ]
    )


def test_fixtures_work_with_the_pool_off(pytester: pytest.Pytester) -> None:
    # -p no:dynpool: the fixtures plugin alone; the marker still sets the request limit.
    pytester.makepyfile(
        test_off="""
        import pytest

        pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")

        @pytest.mark.dynpool(3, job="api", rate="5/s")
        def test_marked(dynpool_job, dynpool_client):
            assert (dynpool_job.name, dynpool_job.effective_cap) == ("api", 3)
            assert dynpool_job.requests.capacity == 3

        def test_unmarked(dynpool_job):
            assert (dynpool_job.name, dynpool_job.cap) == ("unmarked", 1)
        """
    )
    result = pytester.runpytest("-p", "no:dynpool", "-p", "pytest_dynpool.fixtures")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*= dynpool =*")


def test_a_rated_job_runs_every_test(pytester: pytest.Pytester) -> None:
    # Test starts wait for tokens on the workers' condition (never a busy loop);
    # how fast that goes is measured in benchmarks/rate.py, not here.
    pytester.makepyfile(
        test_rated="""
        import pytest

        @pytest.mark.dynpool(2, job="rated", rate="200/s")
        @pytest.mark.parametrize("n", range(8))
        def test_rated(n):
            pass

        @pytest.mark.dynpool(3)
        @pytest.mark.parametrize("n", range(4))
        def test_free(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["rated *2, rate 200/s *8 *8 *0 *0 *"])


def test_the_scheduler_follows_an_adaptive_jobs_effective_cap(pytester: pytest.Pytester) -> None:
    # test_shrink drives the job's effective cap from 4 to 1 (as three 429
    # episodes would) while the other items that started with it wait at a gate.
    # Every item dispatched afterwards must then run alone in the job: each waits
    # briefly for company, which a scheduler still using cap 4 would give it.
    pytester.makepyfile(
        test_adaptive="""
        import threading

        import pytest

        pytestmark = pytest.mark.dynpool(4, job="api", adaptive=True)
        SHRUNK = threading.Event()
        LOCK = threading.Lock()
        RUNNING = set()
        COMPANY = threading.Event()
        SEEN_WITH_COMPANY = []


        def test_shrink(dynpool_job):
            for _ in range(2):
                dynpool_job.record(429, 0.0, dynpool_job.generation)
            assert dynpool_job.effective_cap == 1
            SHRUNK.set()


        @pytest.mark.parametrize("n", range(3))
        def test_started_before(n):
            assert SHRUNK.wait(30)


        @pytest.mark.parametrize("n", range(4))
        def test_after(n):
            with LOCK:
                if RUNNING:
                    SEEN_WITH_COMPANY.append(n)
                    COMPANY.set()
                RUNNING.add(n)
            COMPANY.wait(0.1)
            with LOCK:
                RUNNING.discard(n)
            assert SEEN_WITH_COMPANY == []
        """
    )
    result = pytester.runpytest("--dynpool-workers", "8")
    result.assert_outcomes(passed=8)


def test_a_cap_lowered_before_the_pool_starts_holds_in_the_pool(
    pytester: pytest.Pytester,
) -> None:
    # test_shrink is unmarked, so it runs alone before the pool; it lowers the
    # "api" job's effective cap, which must then hold for the job's pooled tests.
    pytester.makepyfile(
        test_early="""
        import threading

        import pytest

        from pytest_dynpool.fixtures import REGISTRY_KEY
        from pytest_dynpool.jobs import ITEM_JOB_KEY

        LOCK = threading.Lock()
        RUNNING = set()
        COMPANY = threading.Event()
        SEEN_WITH_COMPANY = []


        def test_shrink(request):
            pooled = next(i for i in request.session.items if i.name.startswith("test_after"))
            state = request.config.stash[REGISTRY_KEY].state(pooled.stash[ITEM_JOB_KEY])
            for _ in range(2):
                state.record(503, 0.0, state.generation)
            assert (state.name, state.effective_cap) == ("api", 1)


        @pytest.mark.dynpool(4, job="api", adaptive=True)
        @pytest.mark.parametrize("n", range(4))
        def test_after(n):
            with LOCK:
                if RUNNING:
                    SEEN_WITH_COMPANY.append(n)
                    COMPANY.set()
                RUNNING.add(n)
            COMPANY.wait(0.1)
            with LOCK:
                RUNNING.discard(n)
            assert SEEN_WITH_COMPANY == []
        """
    )
    result = pytester.runpytest("--dynpool-workers", "8")
    result.assert_outcomes(passed=5)


def test_loading_the_plugin_warns_nothing(pytester: pytest.Pytester) -> None:
    # A fresh interpreter: in-process runs always see the plugin already imported.
    pytester.makepyfile(
        test_quiet="""
        import pytest

        @pytest.mark.dynpool(2)
        def test_job(dynpool_job):
            assert dynpool_job.cap == 2
        """
    )
    result = pytester.runpytest_subprocess("-W", "error", "--dynpool-workers", "2")
    result.assert_outcomes(passed=1)
    result.stderr.no_fnmatch_line("*Warning*")
