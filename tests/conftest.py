"""Shared fixtures for the core tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alert_infra.plugins import PluginHost
from alert_infra.security import _REDACTOR
from alert_infra.testing import isolated_plugin_host

# The hypothesis profiles ("default", "ci") are registered by the repository's conftest.py.


@pytest.fixture
def host() -> Iterator[PluginHost]:
    """A fresh plugin host without entry points, installed as the process-wide host."""
    with isolated_plugin_host(load_entry_points=False) as fresh:
        yield fresh


@pytest.fixture(autouse=True)
def _clean_redactor() -> Iterator[None]:
    """Plugin keys/patterns and configured secrets registered by one test do not leak into the next."""
    yield
    _REDACTOR.reset()
