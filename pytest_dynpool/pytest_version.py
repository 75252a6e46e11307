"""Which pytest (and pytest-xdist) versions the plugin supports; imports no private pytest name.

``pytest_compat`` runs this check before it imports pytest's private names, so
an unsupported pytest gets this message (a usage error, exit 4), never an
``ImportError`` from inside the plugin.
"""

from __future__ import annotations

import pytest

MIN_PYTEST = (8, 4)
MAX_PYTEST_MAJOR = 9


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_pytest_version(version: str | None = None) -> None:
    """Refuse to run on a pytest whose internals we have not checked (default: the running one)."""
    if version is None:
        version = pytest.__version__
    found = _version_tuple(version)
    if found < MIN_PYTEST or found[0] > MAX_PYTEST_MAJOR:
        raise pytest.UsageError(
            f"pytest-dynpool supports pytest >= {'.'.join(map(str, MIN_PYTEST))} and "
            f"< {MAX_PYTEST_MAJOR + 1}, found pytest {version}; install a supported "
            "pytest or disable the plugin with -p no:dynpool"
        )


# pytest-xdist: the versions whose worker loop and scheduler ``pytest_compat`` was checked against.
MIN_XDIST = (3, 6)
MAX_XDIST_MAJOR = 3


def check_xdist_version(version: str) -> str | None:
    """Why this pytest-xdist cannot run beside the pool, or None when it can."""
    found = _version_tuple(version)
    if found < MIN_XDIST or found[0] > MAX_XDIST_MAJOR:
        return (
            f"pytest-xdist {version} is not supported beside dynpool (supported: >= "
            f"{'.'.join(map(str, MIN_XDIST))}, < {MAX_XDIST_MAJOR + 1}); markers are ignored"
        )
    return None
