"""The transport contract kit (alert_infra.testing.contract) run against the Resend, SendGrid and SES transports."""

from __future__ import annotations

import importlib.util

import pytest

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


@pytest.mark.skipif(
    importlib.util.find_spec("botocore") is None,
    reason="botocore (the ses extra) is not installed: pip install './plugins/alert-infra-email[ses]'",
)
class TestSESContract(TransportContract):
    """The kit against SES v2: the fake's success answer checks the SigV4 signature independently."""

    transport_type = "ses"
    key_id = "AKIAQ3KITKEYID0000001"[:20]
    secret = "kitSecret/K7MDENG/bPxRfiCYsEcReT00000003"

    @pytest.fixture(autouse=True)
    def _verifier(self, sigv4, aws_isolated):
        self.verify = sigv4

    def options(self, base_url):
        return {
            "region": "us-east-1",
            "from_email": "alerts@example.com",
            "to_emails": ["ops@example.com"],
            "aws_access_key_id": self.key_id,
            "aws_secret_access_key": self.secret,
            "api_url": f"{base_url}/v2/email/outbound-emails",
        }

    def success(self, request):
        denied = self.verify(request, {self.key_id: (self.secret, None)})
        return denied or (200, {}, {"MessageId": "kit-message-id"})
