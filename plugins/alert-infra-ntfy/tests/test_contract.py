"""The transport contract kit (alert_infra.testing.contract) run against the ntfy plugin."""

from __future__ import annotations

from alert_infra.testing.contract import TransportContract

TOPIC = "kitTopic-0123456789abcdef"
TOKEN = "tk_kitToken0123456789abcdefghijk"


class TestNtfyContract(TransportContract):
    transport_type = "ntfy"

    def options(self, base_url):
        return {"topic": TOPIC, "api_url": base_url, "token": TOKEN}

    def success(self, request):
        body = request.json()
        return 200, {}, {"id": "kitMsg0123ab", "event": "message", "topic": body["topic"], "message": "x"}

    def failure(self, status, request, echo):
        headers = {"Retry-After": "7"} if status == 429 else {}
        return status, headers, {"code": status * 100 + 1, "http": status, "error": f"rejected for {echo}"}

    def check_request(self, request, alert):
        body = request.json()
        assert len(request.body) <= 8192 and len(body["message"].encode("utf-8")) <= 4096
        assert body["topic"] == TOPIC and request.path == "/"
