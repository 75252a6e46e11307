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
