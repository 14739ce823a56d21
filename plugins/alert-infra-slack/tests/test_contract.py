"""The transport contract kit (alert_infra.testing.contract) run against the Slack plugin."""

from __future__ import annotations

from alert_infra.testing.contract import TransportContract


class TestSlackContract(TransportContract):
    transport_type = "slack"

    def options(self, base_url):
        return {"webhook_url": f"{base_url}/services/T0KIT0001/B0KIT0002/kitSecretWebhookPath42"}

    def success(self, request):
        return 200, {}, "ok"

    def check_request(self, request, alert):
        payload = request.json()
        assert len(payload["blocks"]) <= 50 and len(payload["text"]) <= 40_000
