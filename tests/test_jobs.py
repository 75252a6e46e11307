"""Marker -> jobs: where a marker is declared defines the job; bad input is a usage error."""

from __future__ import annotations

import pytest


def glob_escape(text: str) -> str:
    return "".join(f"[{ch}]" if ch in "[]*?" else ch for ch in text)


def job_rows(result: pytest.RunResult, *rows: tuple[str, int, int]) -> None:
    result.stdout.fnmatch_lines(
        ["*= dynpool =*"] + [f"{glob_escape(name)} *{cap}* {items} *" for name, cap, items in rows]
    )


def test_function_marker_makes_one_job_of_all_parametrized_items(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_api="""
        import pytest

        @pytest.mark.dynpool(2)
        @pytest.mark.parametrize("n", range(5))
        def test_get(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=5)
    job_rows(result, ("test_api.py::test_get", 2, 5))
    result.stdout.fnmatch_lines(["dynpool: 1 jobs, 5 pooled items, 0 exclusive items"])


def test_class_and_module_declarations_and_closest_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mod="""
        import pytest

        pytestmark = pytest.mark.dynpool(3)

        def test_module_level():
            pass

        @pytest.mark.dynpool(1)
        class TestLegacy:
            def test_a(self):
                pass

            @pytest.mark.dynpool(2)
            def test_own(self):
                pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=3)
    job_rows(
        result,
        ("test_mod.py", 3, 1),
        ("test_mod.py::TestLegacy", 1, 1),
        ("test_mod.py::TestLegacy::test_own", 2, 1),
    )


def test_named_job_spans_files(pytester: pytest.Pytester) -> None:
    for name in ("test_one", "test_two"):
        pytester.makepyfile(
            **{
                name: """
                import pytest

                @pytest.mark.dynpool(max_concurrency=2, job="payments")
                def test_x():
                    pass
                """
            }
        )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=2)
    job_rows(result, ("payments", 2, 2))


def test_marker_on_one_param_is_its_own_job(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_p="""
        import pytest

        @pytest.mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.dynpool(1))])
        @pytest.mark.dynpool(4)
        def test_p(n):
            pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "4")
    result.assert_outcomes(passed=2)
    job_rows(result, ("test_p.py::test_p", 4, 1), ("test_p.py::test_p[2]", 1, 1))


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("dynpool(0)", "max_concurrency must be >= 1, got 0"),
        ("dynpool(-1)", "max_concurrency must be >= 1, got -1"),
        ('dynpool("2")', "max_concurrency must be an int, got '2'"),
        ("dynpool(2.5)", "max_concurrency must be an int, got 2.5"),
        ("dynpool(None)", "max_concurrency must be an int, got None"),
        ("dynpool(True)", "max_concurrency must be an int, got True"),
        ("dynpool()", "missing 1 required positional argument: 'max_concurrency'"),
        ("dynpool(2, speed=5)", "got an unexpected keyword argument 'speed'"),
        ("dynpool(2, rate=5)", "rate must be a string like '10/s', got 5"),
        ('dynpool(2, rate="10")', "rate must look like '10/s' or '600/m', got '10'"),
        ('dynpool(2, rate="10/h")', "rate must look like '10/s' or '600/m', got '10/h'"),
        ('dynpool(2, rate="0/s")', "rate must be > 0, got '0/s'"),
        ('dynpool(2, adaptive="yes")', "adaptive must be True or False, got 'yes'"),
        ("dynpool(2, 3)", "takes 1 positional argument but 2 were given"),
        ('dynpool(2, job="")', "job must be a non-empty string"),
    ],
)
def test_bad_marker_is_a_usage_error_naming_the_test(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        test_bad=f"""
        import pytest

        @pytest.mark.{marker}
        def test_target():
            raise AssertionError("must not run")
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: test_bad.py::test_target: invalid @pytest.mark.dynpool(*): *{message}*"
            "use @pytest.mark.dynpool(max_concurrency=K)*"
        ]
    )
    result.stdout.no_fnmatch_line("*must not run*")


def test_one_job_name_with_two_caps_names_both_places(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="""
        import pytest

        @pytest.mark.dynpool(2, job="shared")
        def test_a():
            pass
        """,
        test_b="""
        import pytest

        @pytest.mark.dynpool(3, job="shared")
        class TestB:
            def test_b(self):
                pass
        """,
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            'ERROR: dynpool job "shared" is declared with two different caps: '
            "max_concurrency=2 at test_a.py::test_a and max_concurrency=3 at test_b.py::TestB*"
        ]
    )


def test_cap_overrides_from_cli_beat_ini_and_markers(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        dynpool_caps =
            slow=2
            fast=5
        """
    )
    pytester.makepyfile(
        test_o="""
        import pytest

        @pytest.mark.dynpool(4, job="slow")
        def test_slow():
            pass

        @pytest.mark.dynpool(4, job="fast")
        def test_fast():
            pass
        """
    )
    result = pytester.runpytest(
        "--dynpool-workers", "4", "--dynpool-cap", "slow=1", "--dynpool-cap", "nosuchjob=3"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "slow *1 (declared 4)*",
            "fast *5 (declared 4) (pool bounds it to 4)*",
            "warning: --dynpool-cap/dynpool_caps or --dynpool-rate/dynpool_rates name no "
            "selected job: nosuchjob",
        ]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dynpool-workers", "0"], "expected an integer >= 1 or 'auto', got 0"),
        (["--dynpool-workers", "many"], "expected an integer >= 1 or 'auto', got 'many'"),
        (["--dynpool-cap", "slow"], "expected JOB=K with an integer K >= 1, got 'slow'"),
        (["--dynpool-cap", "slow=0"], "expected JOB=K with an integer K >= 1, got 'slow=0'"),
        (["--dynpool-cap", "=2"], "expected JOB=K with an integer K >= 1, got '=2'"),
        (["--dynpool-unmarked", "sometimes"], "invalid choice: 'sometimes'"),
    ],
)
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("dynpool_workers = -3", "expected an integer >= 1 or 'auto', got -3"),
        ("dynpool_caps = broken", "expected JOB=K with an integer K >= 1, got 'broken'"),
        ("dynpool_unmarked = never", "expected 'exclusive' or 'pool', got 'never'"),
    ],
)
def test_bad_ini_values_are_usage_errors(pytester: pytest.Pytester, ini: str, message: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: *{message}*"])


def test_header_reports_workers_and_ini_default(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ndynpool_workers = 3\ndynpool_unmarked = pool\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["dynpool: 3 workers, unmarked tests: pool", "*= dynpool =*", "unmarked *3 *1 *"]
    )


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dynpool(0)
        def test_x():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:dynpool", "-W", "ignore::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("dynpool: *")
    result.stdout.no_fnmatch_line("*= dynpool =*")


def test_conftest_hook_can_assign_jobs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_dynpool import JobAssignment

        def pytest_dynpool_job_for_item(item):
            if "legacy" in item.name:
                return JobAssignment("legacy-host", 1, "conftest.py")
            return None
        """
    )
    pytester.makepyfile(
        """
        import pytest

        def test_legacy_a(): pass
        def test_legacy_b(): pass

        @pytest.mark.dynpool(2)
        def test_marked(): pass

        def test_plain(): pass
        """
    )
    result = pytester.runpytest("--dynpool-workers", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["legacy-host *1 *2 *", "*::test_marked *2 *1 *", "exclusive: 1 unmarked items ran alone"]
    )


def test_pdb_turns_pooling_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dynpool(2)
        def test_x():
            pass
        """
    )
    result = pytester.runpytest("--pdb")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["dynpool: off (--pdb/--trace: every test runs alone)"])
    result.stdout.no_fnmatch_line("*= dynpool =*")
