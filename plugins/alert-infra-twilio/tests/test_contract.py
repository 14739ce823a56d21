"""The transport contract kit (alert_infra.testing.contract) run against the Twilio plugin."""

from __future__ import annotations

from urllib.parse import parse_qs

from alert_infra.testing.contract import TransportContract

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "kitAuthToken0123456789abcdefABCD"


class TestTwilioContract(TransportContract):
    transport_type = "twilio"

    def options(self, base_url):
        return {
            "account_sid": ACCOUNT,
            "auth_token": TOKEN,
            "from_number": "+15005550006",
            "to_numbers": ["+14155550100"],
            "api_url": base_url,
        }

    def success(self, request):
        return 201, {}, {"sid": "SM" + "ab" * 16, "status": "queued", "account_sid": ACCOUNT}

    def failure(self, status, request, echo):
        headers = {"Retry-After": "7"} if status == 429 else {}
        code = {400: 21211, 401: 20003, 403: 20003, 404: 20404, 429: 20429}.get(status, 20500)
        more = f"https://www.twilio.com/docs/errors/{code}"
        return status, headers, {"code": code, "message": f"rejected for {echo}", "more_info": more, "status": status}

    def check_request(self, request, alert):
        fields = parse_qs(request.body.decode("ascii"))
        body = fields["Body"][0]
        assert len(body.encode("utf-16-le")) // 2 <= 1600 and body.endswith("... [truncated]")
        assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json" and fields["To"] == ["+14155550100"]
