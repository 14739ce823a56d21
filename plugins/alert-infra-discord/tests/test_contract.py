"""The transport contract kit (alert_infra.testing.contract) run against the Discord plugin."""

from __future__ import annotations

from alert_infra.testing.contract import TransportContract

# A webhook URL's shape: /api/webhooks/<id>/<token>; the token is the secret.
PATH = "/api/webhooks/112233445566778899/kitDiscordWebhookToken_0123456789-abcdefghijklmnopqrstuv"


class TestDiscordContract(TransportContract):
    transport_type = "discord"

    def options(self, base_url):
        return {"webhook_url": base_url + PATH, "username": "alerts", "avatar_url": base_url + "/avatar.png"}

    def success(self, request):
        if request.method == "PATCH":  # update(): Discord's "Edit Webhook Message" answers with the message
            assert request.path == PATH + "/messages/1234567890123456789", "the edit names the posted message"
        else:
            assert request.path.endswith("?wait=true"), "an alert is posted with wait=true"
        return 200, {}, {"id": "1234567890123456789", "channel_id": "42", "type": 0}

    def failure(self, status, request, echo):
        body = {"message": f"rejected for {echo}", "code": {401: 50027, 404: 10015}.get(status, 0)}
        return status, {}, body

    def rate_limited(self, request, echo):
        return (
            429,
            {"Retry-After": "7"},
            {"message": "You are being rate limited.", "retry_after": 7.0, "global": False},
        )

    def check_request(self, request, alert):
        payload = request.json()
        embed = payload["embeds"][0]
        assert payload["allowed_mentions"] == {"parse": []}
        assert len(payload["content"]) <= 2000 and len(embed["description"]) <= 4096
        total = len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
        total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
        assert total <= 6000 and len(embed["fields"]) <= 25
