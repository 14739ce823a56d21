"""The transport contract kit (alert_infra.testing.contract) run against the PagerDuty plugin."""

from __future__ import annotations

from alert_infra.testing.contract import TransportContract


class TestPagerDutyContract(TransportContract):
    transport_type = "pagerduty"

    def options(self, base_url):
        return {"routing_key": "kitSecretRoutingKey0123456789ABC", "api_url": f"{base_url}/v2/enqueue"}

    def success(self, request):
        return 202, {}, {"status": "success", "dedup_key": "k"}

    def check_request(self, request, alert):
        assert len(request.json()["payload"]["summary"]) <= 1024
