"""Shared fixtures for the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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


#: The Redis the tests share (database 13); each test names its own keys or flushes it.
REDIS_TEST_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A redis-py client of :data:`REDIS_TEST_URL`; the test skips with "service unavailable: redis
    …" where the package or the server is missing (``.ci/run`` turns that skip into a failure)."""
    try:
        import redis
    except ImportError:
        pytest.skip("service unavailable: redis (the redis package is not installed: pip install 'alert-infra[redis]')")
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"service unavailable: redis at 127.0.0.1:6379 ({type(exc).__name__})")
    yield client
    client.close()
