"""The transport contract kit (alert_infra.testing.contract) run against the Teams plugin."""

from __future__ import annotations

from alert_infra.testing.contract import TransportContract

# A Workflows URL's shape: the secret is the whole URL (its signature is in the query).
PATH = "/workflows/0kit1workflow2id/triggers/manual/paths/invoke"
QUERY = "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=kitSignature0123456789abcdefXYZ"


class TestTeamsContract(TransportContract):
    transport_type = "teams"

    def options(self, base_url):
        return {"webhook_url": base_url + PATH + QUERY}

    def success(self, request):
        return 202, {}, b""  # Workflows accepts with 202 and an empty body

    def failure(self, status, request, echo):
        headers = {"Retry-After": "7"} if status == 429 else {}
        return status, headers, {"error": {"code": "ContractError", "message": f"rejected for {echo}"}}

    def check_request(self, request, alert):
        assert len(request.body) <= 28 * 1024
        card = request.json()["attachments"][0]["content"]
        assert card["type"] == "AdaptiveCard" and card["body"][0]["type"] == "TextBlock"
