"""Repository-wide pytest configuration (applies to tests/ and plugins/*/tests).

Tests that need a local service (Redis, RabbitMQ) skip with a reason starting
``service unavailable:`` when it is not reachable. With
``ALERT_INFRA_REQUIRE_SERVICES=1`` (set by ``.ci/run``), such a skip is turned
into a failure, so CI always runs them.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Slow shared CI machines: no per-example deadline; more examples when asked for
# (HYPOTHESIS_PROFILE=ci, set by .ci/run). Here, so plugin test folders run alone get them too.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
# The other Pythons of a CI run (noxfile.py): the property tests' search is the same on every
# Python, so 300 examples run on one and a quick pass (a version-specific crash shows in the
# first examples) on the four others, which keeps the whole run within its time budget.
settings.register_profile("quick", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# The kit's fixtures (provider_server, smtp_server, leak_capture, ...) for every test folder of the
# repository, as a plugin's own pyproject opts into them when it is tested alone.
pytest_plugins = ["alert_infra.testing.pytest"]

SERVICE_SKIP_PREFIX = "service unavailable:"


@pytest.fixture(autouse=True)
def _clean_redactor():  # type: ignore[no-untyped-def]
    """Plugin keys/patterns and secrets registered by one test do not leak into the next, in every
    folder: a plugin's test that builds a channel with a chat id registered as a secret must not
    mask that id in another plugin's test run later in the same process."""
    yield
    from alert_infra.security import _REDACTOR

    _REDACTOR.reset()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("ALERT_INFRA_REQUIRE_SERVICES", "") in ("", "0"):
        return
    reason = ""
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        reason = str(report.longrepr[2])
    if SERVICE_SKIP_PREFIX in reason:
        report.outcome = "failed"
        report.longrepr = f"{reason} (ALERT_INFRA_REQUIRE_SERVICES=1: a required service must be running)"
