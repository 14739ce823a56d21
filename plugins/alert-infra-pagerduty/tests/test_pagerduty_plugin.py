"""alert-infra-pagerduty: the distribution is installed and discovered through its entry points."""

from __future__ import annotations

import pytest

from alert_infra import PluginLoadError
from alert_infra.testing import isolated_plugin_host

DISTRIBUTION = "alert-infra-pagerduty"
ENTRY_POINTS = ["pagerduty"]


def test_plugin_is_installed() -> None:
    """The installed distribution is found through entry points, loaded, at its version."""
    with isolated_plugin_host(load_entry_points=True) as host:
        (plugin,) = [p for p in host.list_plugins() if p["distribution"] == DISTRIBUTION]
    assert plugin["status"] == "loaded", plugin["error"]
    assert plugin["version"] == "0.2.0"
    assert sorted(plugin["entry_points"]) == ENTRY_POINTS
    assert plugin["hooks"] == ["alert_infra_register_transports"]


@pytest.mark.parametrize("type_name", ENTRY_POINTS)
def test_type_not_provided_yet(type_name: str) -> None:
    """Until its transport lands, asking for the type names the distribution and the type."""
    with isolated_plugin_host(load_entry_points=True) as host, pytest.raises(PluginLoadError) as info:
        host.transport_class(type_name)
    assert DISTRIBUTION in str(info.value) and repr(type_name) in str(info.value)
