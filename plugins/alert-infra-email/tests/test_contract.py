"""The transport contract kit (alert_infra.testing.contract) run against the Resend and SendGrid transports."""

from __future__ import annotations

from alert_infra.testing.contract import TransportContract


class TestResendContract(TransportContract):
    transport_type = "resend"

    def options(self, base_url):
        return {
            "api_key": "re_kitSecretApiKey0123456789",
            "from_email": "alerts@example.com",
            "to_emails": ["ops@example.com"],
            "api_url": f"{base_url}/emails",
        }

    def success(self, request):
        return 200, {}, {"id": "kit"}


class TestSendGridContract(TransportContract):
    transport_type = "sendgrid"

    def options(self, base_url):
        return {
            "api_key": "SG.kitSecretApiKey0123456789",
            "from_email": "alerts@example.com",
            "to_emails": ["ops@example.com"],
            "api_url": f"{base_url}/v3/mail/send",
        }

    def success(self, request):
        return 202, {}, ""
