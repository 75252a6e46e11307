"""Every invalid marker, option or ini value: exit code 4, a message naming the test or
option and the fix, and no test run.

One table, so that a new argument (``rate=`` for instance) adds its rows here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

MARKER_FIX = "use @pytest.mark.dynpool(max_concurrency=K)*"


@dataclass(frozen=True)
class BadInput:
    message: str  # an fnmatch pattern of the error line on stderr
    marker: str = "dynpool(2)"
    args: tuple[str, ...] = ()
    ini: str = ""
    extra_files: dict[str, str] = field(default_factory=dict)


def bad_marker(marker: str, message: str) -> BadInput:
    return BadInput(
        "ERROR: test_bad.py::test_target: invalid @pytest.mark.dynpool(*): "
        f"*{message}*{MARKER_FIX}",
        marker=marker,
    )


def bad_option(args: tuple[str, ...], message: str) -> BadInput:
    return BadInput(f"*{args[0]}*{message}*", args=args)


def bad_ini(ini: str, message: str) -> BadInput:
    return BadInput(f"ERROR: *{ini.split(' =')[0]}*{message}*", ini=ini)


CAP_HINT = "expected JOB=K with an integer K >= 1, got {!r} (e.g. --dynpool-cap *"
WORKERS_HINT = "expected an integer >= 1 or 'auto', got {}"
TIMEOUT_HINT = "expected a number of seconds >= 0 (0 or 'none' for no timeout), got {!r}"

TABLE = {
    "k=0": bad_marker("dynpool(0)", "max_concurrency must be >= 1, got 0"),
    "k=-1": bad_marker("dynpool(-1)", "max_concurrency must be >= 1, got -1"),
    'k="2"': bad_marker('dynpool("2")', "max_concurrency must be an int, got '2'"),
    "k=2.5": bad_marker("dynpool(2.5)", "max_concurrency must be an int, got 2.5"),
    "k=None": bad_marker("dynpool(None)", "max_concurrency must be an int, got None"),
    "k=True": bad_marker("dynpool(True)", "max_concurrency must be an int, got True"),
    "k missing": bad_marker(
        "dynpool()", "missing 1 required positional argument: 'max_concurrency'"
    ),
    "two positionals": bad_marker("dynpool(2, 3)", "takes 1 positional argument but 2 were given"),
    "unknown keyword": bad_marker(
        "dynpool(2, speed=5)", "got an unexpected keyword argument 'speed'"
    ),
    "empty job": bad_marker('dynpool(2, job="")', "job must be a non-empty string"),
    "job not a str": bad_marker("dynpool(2, job=7)", "job must be a non-empty string, got 7"),
    'timeout="5"': bad_marker(
        'dynpool(2, timeout="5")', "timeout must be a number of seconds, got '5'"
    ),
    "timeout=-1": bad_marker(
        "dynpool(2, timeout=-1)", "timeout must be a finite number >= 0, got -1"
    ),
    "timeout=True": bad_marker(
        "dynpool(2, timeout=True)", "timeout must be a number of seconds, got True"
    ),
    "timeout=nan": bad_marker(
        'dynpool(2, timeout=float("nan"))', "timeout must be a finite number >= 0, got nan"
    ),
    "rate=5": bad_marker("dynpool(2, rate=5)", "rate must be a string like '10/s', got 5"),
    'rate="10"': bad_marker(
        'dynpool(2, rate="10")', "rate must look like '10/s' or '600/m', got '10'"
    ),
    'rate="10/h"': bad_marker(
        'dynpool(2, rate="10/h")', "rate must look like '10/s' or '600/m', got '10/h'"
    ),
    'rate="0/s"': bad_marker('dynpool(2, rate="0/s")', "rate must be > 0, got '0/s'"),
    'adaptive="yes"': bad_marker(
        'dynpool(2, adaptive="yes")', "adaptive must be True or False, got 'yes'"
    ),
    "one job, two caps": BadInput(
        'ERROR: dynpool job "shared" is declared with two different caps: '
        "max_concurrency=2 at test_bad.py::test_target and max_concurrency=3 at "
        "test_other.py::TestB (test test_other.py::TestB::test_b); give every declaration "
        "of the job the same max_concurrency, rate and adaptive, or use different job names",
        marker='dynpool(2, job="shared")',
        extra_files={
            "test_other.py": (
                "import pytest\n\n"
                '@pytest.mark.dynpool(3, job="shared")\n'
                "class TestB:\n"
                "    def test_b(self):\n"
                '        open("ran", "w").close()\n'
            )
        },
    ),
    "--dynpool-workers 0": bad_option(("--dynpool-workers", "0"), WORKERS_HINT.format(0)),
    "--dynpool-workers many": bad_option(
        ("--dynpool-workers", "many"), WORKERS_HINT.format("'many'")
    ),
    "--dynpool-cap slow": bad_option(("--dynpool-cap", "slow"), CAP_HINT.format("slow")),
    "--dynpool-cap slow=0": bad_option(("--dynpool-cap", "slow=0"), CAP_HINT.format("slow=0")),
    "--dynpool-cap slow=x": bad_option(("--dynpool-cap", "slow=x"), CAP_HINT.format("slow=x")),
    "--dynpool-cap =2": bad_option(("--dynpool-cap", "=2"), CAP_HINT.format("=2")),
    "--dynpool-unmarked sometimes": bad_option(
        ("--dynpool-unmarked", "sometimes"), "invalid choice: 'sometimes'"
    ),
    "--dynpool-timeout soon": bad_option(
        ("--dynpool-timeout", "soon"), TIMEOUT_HINT.format("soon")
    ),
    "--dynpool-timeout -1": bad_option(("--dynpool-timeout", "-1"), TIMEOUT_HINT.format("-1")),
    "--dynpool-timeout inf": bad_option(("--dynpool-timeout", "inf"), TIMEOUT_HINT.format("inf")),
    "--dynpool-rate slow": bad_option(("--dynpool-rate", "slow"), "expected JOB=RATE*'slow'"),
    "--dynpool-rate slow=fast": bad_option(
        ("--dynpool-rate", "slow=fast"), "expected JOB=RATE*'slow=fast'"
    ),
    "ini dynpool_rates": bad_ini("dynpool_rates = slow=1/h", "expected JOB=RATE*'slow=1/h'"),
    "ini dynpool_workers": bad_ini("dynpool_workers = -3", WORKERS_HINT.format(-3)),
    "ini dynpool_caps": bad_ini("dynpool_caps = broken", CAP_HINT.format("broken")),
    "--dynpool-order random": bad_option(("--dynpool-order", "random"), "invalid choice: 'random'"),
    "ini dynpool_order": bad_ini(
        "dynpool_order = fastest",
        "expected 'duration', 'count' or 'collection', got 'fastest'",
    ),
    "ini dynpool_unmarked": bad_ini(
        "dynpool_unmarked = never", "expected 'exclusive' or 'pool', got 'never'"
    ),
    "ini dynpool_timeout": bad_ini("dynpool_timeout = never", TIMEOUT_HINT.format("never")),
}


def write_suite(pytester: pytest.Pytester, case: BadInput) -> None:
    """The suite of ``case``: its bad marker (or a good one), ini file and extra files."""
    if case.ini:
        pytester.makeini(f"[pytest]\n{case.ini}\n")
    pytester.makepyfile(
        test_bad=f"""
        import pytest

        @pytest.mark.{case.marker}
        def test_target():
            open("ran", "w").close()

        def test_unmarked():
            open("ran", "w").close()
        """
    )
    for name, source in case.extra_files.items():
        (pytester.path / name).write_text(source)


@pytest.mark.parametrize("case", TABLE.values(), ids=TABLE.keys())
def test_bad_input_is_a_usage_error_and_runs_nothing(
    pytester: pytest.Pytester, case: BadInput
) -> None:
    write_suite(pytester, case)
    result = pytester.runpytest(*case.args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([case.message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / "ran").exists(), "a test ran despite the usage error"
