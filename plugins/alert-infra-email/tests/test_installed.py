"""alert-infra-email is installed, discovered through its five entry points, and provides five types."""

from __future__ import annotations

from alert_infra_email import (
    EmailTransport,
    ResendEmailTransport,
    SendGridEmailTransport,
    SESEmailTransport,
    SMTPEmailTransport,
)

from alert_infra.testing import isolated_plugin_host


def test_plugin_is_installed() -> None:
    with isolated_plugin_host(load_entry_points=True) as host:
        (plugin,) = [p for p in host.list_plugins() if p["distribution"] == "alert-infra-email"]
        assert plugin["status"] == "loaded", plugin["error"]
        assert sorted(plugin["entry_points"]) == ["email", "resend", "sendgrid", "ses", "smtp"]
        assert plugin["transports"] == ["resend", "sendgrid", "ses", "smtp", "email"]
        assert host.transport_class("smtp") is SMTPEmailTransport
        assert host.transport_class("resend") is ResendEmailTransport
        assert host.transport_class("sendgrid") is SendGridEmailTransport
        assert host.transport_class("email") is EmailTransport
        assert host.transport_class("ses") is SESEmailTransport
