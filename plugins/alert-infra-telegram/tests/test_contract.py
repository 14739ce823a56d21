"""The transport contract kit (alert_infra.testing.contract) run against the Telegram plugin."""

from __future__ import annotations

from alert_infra.testing.contract import TransportContract


class TestTelegramContract(TransportContract):
    transport_type = "telegram"

    def options(self, base_url):
        return {"bot_token": "123456789:AAkitSecretBotToken_0123456789", "chat_id": "-1001", "api_base_url": base_url}

    def success(self, request):
        return 200, {}, {"ok": True, "result": {"message_id": 1}}

    def check_request(self, request, alert):
        from alert_infra_telegram import visible_length

        assert visible_length(request.json()["text"]) <= 4096
