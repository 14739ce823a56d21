"""The transport contract kit (alert_infra.testing.contract) run against the Pushover plugin.

Delivered alerts are answered by the validating fake (pushover_fake.py), so the kit's alerts,
the 12,000-character one included, pass Pushover's own checks (limits, emergency rules).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from pushover_fake import TOKEN, USER, PushoverFake

from alert_infra.testing.contract import TransportContract


class TestPushoverContract(TransportContract):
    transport_type = "pushover"

    def options(self, base_url):
        return {"token": TOKEN, "user": USER, "api_url": base_url}

    def success(self, request):
        status, headers, body = PushoverFake()(request)
        assert status == 200, f"the fake refused the kit's alert: {body}"
        return status, headers, body

    def failure(self, status, request, echo):
        headers = {"Retry-After": "7"} if status == 429 else {}
        return status, headers, {"token": "invalid", "errors": [f"rejected for {echo}"], "status": 0, "request": "r-1"}

    def invalid_options(self, base_url):
        return {
            **super().invalid_options(base_url),
            "token": "not-a-pushover-token",
            "user": "short",
            "device": "two words",
            "emergency_retry": 10,
            "emergency_expire": "4h",
        }

    def check_request(self, request, alert):
        fields = {k: v[-1] for k, v in parse_qs(request.body.decode("ascii"), keep_blank_values=True).items()}
        assert len(fields["message"]) <= 1024 and len(fields["title"]) <= 250
        assert fields["priority"] == "2" and fields["retry"] == "60" and fields["expire"] == "3600"  # a critical alert
