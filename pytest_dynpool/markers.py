"""Registers the dynpool markers: a plugin of its own, loaded even when the pool is off.

``-p no:dynpool`` turns the pool off, but a suite's ``@pytest.mark.dynpool`` stays
in its code: under ``--strict-markers`` an unregistered marker would make every
marked module a collection error. This module has its own entry point
(``dynpool_markers``), so the markers are known whether or not the pool runs.
"""

from __future__ import annotations

import pytest

from .jobs import ALONE_MARKER_HELP, MARKER_HELP

PLUGIN_NAME = "dynpool_markers"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", ALONE_MARKER_HELP)
