"""Shared fixtures for the core tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from alert_infra.plugins import PluginHost
from alert_infra.security import _REDACTOR
from alert_infra.testing import isolated_plugin_host

# Slow shared CI machines: no per-example deadline; more examples when asked for.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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
