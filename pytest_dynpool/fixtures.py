"""``pytest_dynpool.fixtures``: the name under which the HTTP plugin is documented and registered.

The plugin lives in ``pytest_dynpool.http.plugin``. This module *is* that module
once imported (``-p pytest_dynpool.fixtures``, ``pytest_plugins``), so pytest
never registers the same fixtures twice under two names.
"""

from __future__ import annotations

import sys

from .http import plugin

sys.modules[__name__] = plugin
