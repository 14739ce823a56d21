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


# The bot-token form (chat.postMessage): the same kit, on Slack's Web API shapes.
BOT_TOKEN = "xoxb-kit-0000000000-kitSecretBotToken42"


class TestSlackBotContract(TransportContract):
    transport_type = "slack"

    def options(self, base_url):
        return {"bot_token": BOT_TOKEN, "channel": "C0KIT00001", "api_url": base_url + "/api"}

    def success(self, request):
        # chat.postMessage, and chat.update for update() (the kit's edit on acknowledge and resolve)
        assert request.path in ("/api/chat.postMessage", "/api/chat.update")
        assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"
        if request.path == "/api/chat.update":
            assert request.json()["ts"] == "1700000000.000100", "the edit names the posted message"
        return 200, {}, {"ok": True, "channel": "C0KIT00001", "ts": "1700000000.000100"}

    def failure(self, status, request, echo):
        # Slack's JSON error shape, with the secret quoted where Slack puts its explanations.
        body = {"ok": False, "error": "invalid_auth", "response_metadata": {"messages": [f"[ERROR] {echo}"]}}
        headers = {"Retry-After": "7"} if status == 429 else {}
        return status, headers, body

    def check_request(self, request, alert):
        payload = request.json()
        assert payload["channel"] == "C0KIT00001"
        assert len(payload["blocks"]) <= 50 and len(payload["text"]) <= 40_000
