"""The entry point: an unsupported pytest gets our message, and little is imported up front."""

from __future__ import annotations

import subprocess
import sys

import pytest

IMPORT_ON_AN_UNSUPPORTED_PYTEST = """
import sys
import pytest

pytest.__version__ = "7.4.0"  # faked: an unsupported pytest
for name in [n for n in sys.modules if n.startswith("pytest_dynpool")]:
    del sys.modules[name]
import pytest_dynpool.plugin  # noqa: F401  -- must not touch any private pytest name
loaded = sorted(n for n in sys.modules if n.startswith("pytest_dynpool."))
print("loaded:", " ".join(loaded))
try:
    import pytest_dynpool.pytest_compat  # noqa: F401
except pytest.UsageError as error:
    print("usage error:", error)
except ImportError as error:
    print("import error:", error)
"""


def test_importing_the_plugin_imports_no_runtime_and_no_private_names() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ON_AN_UNSUPPORTED_PYTEST],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = done.stdout.splitlines()[0].split()[1:]
    assert "pytest_dynpool.pytest_compat" not in loaded
    assert not [name for name in loaded if name.startswith("pytest_dynpool.runtime")]
    assert not [name for name in loaded if name.startswith("pytest_dynpool.isolation")]
    assert done.stdout.splitlines()[1].startswith(
        "usage error: pytest-dynpool supports pytest >= 8.4 and < 10, found pytest 7.4.0"
    )


def test_an_unsupported_pytest_is_a_usage_error_naming_the_fix(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_a(): pass")
    monkeypatch.setattr(pytest, "__version__", "10.0.0")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pytest-dynpool supports pytest >= 8.4 and < 10, found pytest 10.0.0*-p no:dynpool*"]
    )
    assert "Traceback" not in result.stderr.str()


def test_an_unsupported_pytest_with_the_plugin_off_runs_as_usual(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_a(): pass")
    monkeypatch.setattr(pytest, "__version__", "10.0.0")
    pytester.runpytest("-p", "no:dynpool").assert_outcomes(passed=1)
