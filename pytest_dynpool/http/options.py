"""The HTTP plugin's own option and ini key: where its clients send requests."""

from __future__ import annotations

import os

import pytest

from ..options import option_group

BASE_URL_ENV = "DYNPOOL_BASE_URL"


def add_http_options(parser: pytest.Parser) -> None:
    """``--dynpool-base-url`` and ini ``dynpool_base_url``, in the ``dynpool`` help group."""
    option_group(parser).addoption(
        "--dynpool-base-url",
        dest="dynpool_base_url",
        default=None,
        metavar="URL",
        help=f"base_url of the dynpool_client fixtures. Wins over ${BASE_URL_ENV}, "
        "which wins over the ini key dynpool_base_url.",
    )
    parser.addini("dynpool_base_url", "base_url of the dynpool_client fixtures.", default="")


def read_base_url(config: pytest.Config) -> str:
    """Flag, then ``$DYNPOOL_BASE_URL``, then the ini key; empty when none is set.

    The environment beats the ini file because it is set per run (CI) while
    the ini file is shared by every run.
    """
    from_option = config.getoption("dynpool_base_url", None)
    if from_option:
        return str(from_option)
    from_env = os.environ.get(BASE_URL_ENV, "")
    if from_env:
        return from_env
    return str(config.getini("dynpool_base_url") or "")
