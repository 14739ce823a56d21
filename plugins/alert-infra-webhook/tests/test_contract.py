"""The transport contract kit (alert_infra.testing.contract) run against the webhook plugin."""

from __future__ import annotations

import base64

from alert_infra.testing.contract import TransportContract

SECRET = "whsec_" + base64.b64encode(b"kit-signing-key-0123456789abcdef").decode()
TOKEN = "Bearer kitHeaderToken0123456789abcdef"


class TestWebhookContract(TransportContract):
    transport_type = "webhook"

    def options(self, base_url):
        return {
            "url": base_url + "/hooks/kitSecretWebhookPath42?token=kitQueryToken987654",
            "secret": SECRET,
            "headers": {"Authorization": TOKEN, "X-Team": "ops"},
        }

    def success(self, request):
        return 204, {}, b""

    def secrets(self, options):
        # The URL and the signing secret (secret_fields), and every header value but the short one.
        return [*super().secrets(options), TOKEN, TOKEN.split(" ", 1)[1]]

    def check_request(self, request, alert):
        assert request.headers["webhook-id"].startswith("msg_")
        assert request.headers["webhook-signature"].startswith("v1,")
        assert request.headers["authorization"] == TOKEN
        body = request.json()
        assert body["version"] == "1" and body["type"] == "alert.firing"
        assert body["data"]["message"] == alert.message  # 12,000 characters: within the body limit, whole
