"""The HTTP plugin's own option and ini key: where its clients send requests."""

from __future__ import annotations

import pytest

from ..options import add_flag_env_ini, flag_env_ini

BASE_URL_ENV = "DYNPOOL_BASE_URL"


def add_http_options(parser: pytest.Parser) -> None:
    """``--dynpool-base-url`` and ini ``dynpool_base_url``, in the ``dynpool`` help group."""
    add_flag_env_ini(
        parser,
        "--dynpool-base-url",
        "dynpool_base_url",
        BASE_URL_ENV,
        "URL",
        "base_url of the dynpool_client fixtures.",
    )


def read_base_url(config: pytest.Config) -> str:
    """Flag, then ``$DYNPOOL_BASE_URL``, then the ini key; empty when none is set."""
    return flag_env_ini(config, "dynpool_base_url", BASE_URL_ENV)
