"""Resend and SendGrid against real HTTPS servers on 127.0.0.1 that answer like their APIs."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alert_infra_email import ResendEmailTransport, SendGridEmailTransport

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    build_transport,
)
from alert_infra.testing import FakeServer, https_server, isolated_plugin_host, unused_port

RESEND_KEY = "re_12345678_ResendSecretKeyValue0001"
SENDGRID_KEY = "SG.sendgridsecret00001.abcdefghijklmnopqrstuvwxyz012345"
ALERT = Alert("Payment failed", "<b>503</b> from provider", severity="critical", source="billing")


class ResendFake:
    """POST /emails with Bearer auth, Idempotency-Key replay and conflicts, scripted errors."""

    def __init__(self) -> None:
        self.scenario = "ok"
        self.delay = 0.0
        self.sent: list[dict] = []
        self.idempotency: dict[str, tuple[str, dict]] = {}

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if self.delay:
            time.sleep(self.delay)
        if request.headers.get("authorization") != f"Bearer {RESEND_KEY}":
            return 403, {}, {"statusCode": 403, "name": "invalid_api_key", "message": "API key is invalid"}
        errors = {
            "validation": (422, {"statusCode": 422, "name": "validation_error", "message": "Invalid `to` field."}),
            "missing_key": (401, {"statusCode": 401, "name": "missing_api_key", "message": "Missing API key"}),
            "concurrent": (409, {"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "wait"}),
            "rate": (429, {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"}),
            "daily": (429, {"statusCode": 429, "name": "daily_quota_exceeded", "message": "quota"}),
            "security": (451, {"statusCode": 451, "name": "security_error", "message": "flagged"}),
        }
        if self.scenario in errors:
            status, body = errors[self.scenario]
            headers = {"retry-after": "2", "ratelimit-reset": "2"} if self.scenario == "rate" else {}
            return status, headers, body
        if self.scenario == "server_error":
            return 500, {"Content-Type": "text/html"}, "<html>Internal Server Error</html>"
        payload = request.json()
        digest = hashlib.sha256(request.body).hexdigest()
        key = request.headers.get("idempotency-key")
        if key in self.idempotency:
            seen_digest, response = self.idempotency[key]
            if seen_digest != digest:
                return (
                    409,
                    {},
                    {"statusCode": 409, "name": "invalid_idempotent_request", "message": "different payload"},
                )
            return 200, {}, response  # replay: nothing is sent again
        response = {"id": str(uuid.uuid4())}
        if key:
            self.idempotency[key] = (digest, response)
        self.sent.append(payload)
        return 200, {}, response


class SendGridFake:
    def __init__(self) -> None:
        self.scenario = "ok"
        self.sent: list[dict] = []

    def __call__(self, request: Any) -> tuple[int, dict[str, str], Any]:
        if request.headers.get("authorization") != f"Bearer {SENDGRID_KEY}":
            return 401, {}, {"errors": [{"message": "The provided authorization grant is invalid", "field": None}]}
        errors = {
            "bad_request": (
                400,
                {
                    "errors": [
                        {"message": "The from address does not match a verified Sender Identity", "field": "from"}
                    ]
                },
            ),
            "forbidden": (403, {"errors": [{"message": "access forbidden", "field": None}]}),
            "too_large": (413, {"errors": [{"message": "content too large", "field": None}]}),
        }
        if self.scenario in errors:
            status, body = errors[self.scenario]
            return status, {}, body
        if self.scenario == "rate":
            reset = str(int(time.time()) + 30)
            return 429, {"X-RateLimit-Reset": reset}, {"errors": [{"field": None, "message": "too many requests"}]}
        if self.scenario == "unavailable":
            return 503, {}, ""
        payload = request.json()
        types = [part["type"] for part in payload["content"]]
        if types != ["text/plain", "text/html"]:
            return 400, {}, {"errors": [{"message": "text/plain must be first, followed by text/html"}]}
        self.sent.append(payload)
        return 202, {"X-Message-Id": "abc"}, b""


@pytest.fixture
def resend_fake() -> ResendFake:
    return ResendFake()


@pytest.fixture
def resend_server(resend_fake: ResendFake) -> Iterator[FakeServer]:
    with https_server(resend_fake) as server:
        yield server


@pytest.fixture
def sendgrid_fake() -> SendGridFake:
    return SendGridFake()


@pytest.fixture
def sendgrid_server(sendgrid_fake: SendGridFake) -> Iterator[FakeServer]:
    with https_server(sendgrid_fake) as server:
        yield server


def resend(server: FakeServer, **kw: Any) -> ResendEmailTransport:
    options: dict[str, Any] = {
        "api_key": RESEND_KEY,
        "from_email": "Alerts <alerts@example.com>",
        "to_emails": ["oncall@example.com"],
        "api_url": server.url + "/emails",
    }
    options.update(kw)
    return ResendEmailTransport(**options)


def sendgrid(server: FakeServer, **kw: Any) -> SendGridEmailTransport:
    options: dict[str, Any] = {
        "api_key": SENDGRID_KEY,
        "from_email": "Alerts <alerts@example.com>",
        "to_emails": ["oncall@example.com"],
        "api_url": server.url + "/v3/mail/send",
    }
    options.update(kw)
    return SendGridEmailTransport(**options)


class TestResend:
    def test_delivers_with_idempotency_key(self, resend_fake: ResendFake, resend_server: FakeServer) -> None:
        """A channel from a mapping delivers; the same alert retried carries the same key and is not sent twice."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport(
                "resend",
                "mail",
                {
                    "api_key": RESEND_KEY,
                    "from_email": "Alerts <alerts@example.com>",
                    "to_emails": ["oncall@example.com"],
                    "api_url": resend_server.url + "/emails",
                },
            )
        dispatcher = AlertDispatcher([channel])
        assert dispatcher.send(ALERT).sent == ("mail",)
        assert dispatcher.send(ALERT).sent == ("mail",)  # a retry of the same occurrence
        assert len(resend_fake.sent) == 1
        keys = {r.headers["idempotency-key"] for r in resend_server.requests}
        assert len(keys) == 1 and next(iter(keys)).endswith("/mail")
        other = Alert("Payment failed", "<b>503</b> from provider", severity="critical", source="billing")
        assert dispatcher.send(other).sent == ("mail",)  # a new occurrence of the same problem: a new email
        assert len(resend_fake.sent) == 2
        payload = resend_fake.sent[0]
        assert payload["subject"] == "[CRITICAL] Payment failed (billing)"
        assert payload["from"] == "Alerts <alerts@example.com>" and payload["to"] == ["oncall@example.com"]
        assert "&lt;b&gt;503&lt;/b&gt;" in payload["html"] and "<b>503</b>" in payload["text"]
        assert payload["tags"] == [{"name": "severity", "value": "critical"}]

    @pytest.mark.parametrize(
        ("scenario", "error", "retry_after", "text"),
        [
            ("validation", NonRetryableAlertTransportError, None, "validation_error"),
            ("missing_key", NonRetryableAlertTransportError, None, "missing_api_key"),
            ("concurrent", RetryableAlertTransportError, 1.0, "concurrent_idempotent_requests"),
            ("rate", RetryableAlertTransportError, 2.0, "rate_limit_exceeded"),
            ("daily", RetryableAlertTransportError, 3600.0, "daily_quota_exceeded"),
            ("security", NonRetryableAlertTransportError, None, "HTTP 451"),
            ("server_error", RetryableAlertTransportError, None, "HTTP 500"),
        ],
    )
    def test_errors(
        self,
        resend_fake: ResendFake,
        resend_server: FakeServer,
        scenario: str,
        error: type,
        retry_after: Any,
        text: str,
    ) -> None:
        resend_fake.scenario = scenario
        with pytest.raises(error) as info:
            resend(resend_server).send(ALERT)
        assert isinstance(info.value, error) and text in str(info.value)
        assert getattr(info.value, "retry_after", None) == retry_after

    def test_same_key_different_payload(self, resend_fake: ResendFake, resend_server: FakeServer) -> None:
        """409 invalid_idempotent_request (a key reused for another payload) is not retryable."""
        transport = resend(resend_server)
        transport.send(ALERT)
        transport.to_emails  # noqa: B018 - 0.1.x attribute still readable
        changed = resend(resend_server, to_emails=["someone-else@example.com"])
        with pytest.raises(NonRetryableAlertTransportError, match="invalid_idempotent_request"):
            changed.send(ALERT)

    def test_wrong_key_slow_refused(self, resend_fake: ResendFake, resend_server: FakeServer) -> None:
        with pytest.raises(NonRetryableAlertTransportError, match="invalid_api_key"):
            resend(resend_server, api_key="re_wrong_key").send(ALERT)
        resend_fake.delay = 2.0
        with pytest.raises(RetryableAlertTransportError, match="read timeout"):
            resend(resend_server, timeout=0.3).send(ALERT)
        with pytest.raises(RetryableAlertTransportError, match="connection failed"):
            ResendEmailTransport(
                api_key=RESEND_KEY,
                from_email="a@example.com",
                to_emails=["b@example.com"],
                api_url=f"https://127.0.0.1:{unused_port()}/emails",
            ).send(ALERT)

    def test_recipient_limit(self) -> None:
        with pytest.raises(AlertConfigurationError, match="at most 50"):
            ResendEmailTransport(
                api_key=RESEND_KEY, from_email="a@example.com", to_emails=[f"u{i}@example.com" for i in range(51)]
            )


class TestSendGrid:
    def test_delivers_202(self, sendgrid_fake: SendGridFake, sendgrid_server: FakeServer) -> None:
        transport = sendgrid(sendgrid_server, reply_to="Ops <ops@example.com>")
        transport.send(ALERT)
        (payload,) = sendgrid_fake.sent
        assert payload["personalizations"] == [{"to": [{"email": "oncall@example.com"}]}]
        assert payload["from"] == {"email": "alerts@example.com", "name": "Alerts"}
        assert payload["reply_to"] == {"email": "ops@example.com", "name": "Ops"}
        assert payload["tracking_settings"]["click_tracking"] == {"enable": False}
        assert payload["custom_args"]["alert_id"] == ALERT.correlation_id
        assert transport.name == "email.sendgrid"

    @pytest.mark.parametrize(
        ("scenario", "error", "text"),
        [
            ("bad_request", NonRetryableAlertTransportError, "verified Sender Identity"),
            ("forbidden", NonRetryableAlertTransportError, "access forbidden"),
            ("too_large", NonRetryableAlertTransportError, "HTTP 413"),
            ("rate", RetryableAlertTransportError, "too many requests"),
            ("unavailable", RetryableAlertTransportError, "HTTP 503"),
        ],
    )
    def test_errors(
        self, sendgrid_fake: SendGridFake, sendgrid_server: FakeServer, scenario: str, error: type, text: str
    ) -> None:
        sendgrid_fake.scenario = scenario
        with pytest.raises(error) as info:
            sendgrid(sendgrid_server).send(ALERT)
        assert isinstance(info.value, error) and text in str(info.value)
        if scenario == "rate":
            assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 31  # type: ignore[attr-defined]

    def test_wrong_key(self, sendgrid_server: FakeServer) -> None:
        with pytest.raises(NonRetryableAlertTransportError, match="HTTP 401"):
            sendgrid(sendgrid_server, api_key="SG.wrong").send(ALERT)


class TestCompat:
    def test_01x_import_path_http_client_and_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """0.1.x README: the http_client test pattern and from_env still work."""
        from alert_infra.email import ResendEmailTransport as Compat
        from alert_infra.email import SendGridEmailTransport as CompatSG
        from alert_infra.email import format_alert_body, format_alert_subject

        class MockHttpClient:
            def __init__(self):  # type: ignore[no-untyped-def]
                self.calls = []

            def post(self, url, *, json, headers=None, timeout):  # type: ignore[no-untyped-def]
                self.calls.append({"url": url, "json": json, "headers": headers, "timeout": timeout})
                return 200

        client = MockHttpClient()
        transport = Compat(
            api_key="test-key", from_email="alerts@example.com", to_emails=["ops@example.com"], http_client=client
        )
        transport.send(Alert(title="Payment failed", message="Failed", metadata={"api_key": "secret"}))
        assert client.calls[0]["headers"]["Authorization"] == "Bearer test-key"
        assert "secret" not in str(client.calls[0]["json"])
        assert transport.name == "email.resend"
        assert format_alert_subject(ALERT) == "[CRITICAL] Payment failed (billing)"
        assert format_alert_body(ALERT).startswith("[CRITICAL] Payment failed (billing)")
        monkeypatch.setenv("ALERT_FROM_EMAIL", "alerts@example.com")
        monkeypatch.setenv("ALERT_TO_EMAILS", "ops@example.com,security@example.com")
        monkeypatch.setenv("ALERT_SENDGRID_API_KEY", "from-secret-manager")
        assert CompatSG.from_env().to_emails == ["ops@example.com", "security@example.com"]
        monkeypatch.delenv("ALERT_RESEND_API_KEY", raising=False)
        with pytest.raises(AlertConfigurationError, match="ALERT_RESEND_API_KEY is required"):
            Compat.from_env()

    def test_missing_plugin_message(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import sys

        monkeypatch.setitem(sys.modules, "alert_infra_email", None)
        with pytest.raises(ImportError, match="pip install alert-infra-email"):
            from alert_infra.email import SMTPEmailTransport  # noqa: F401

    def test_payload_is_json(self) -> None:
        payload = ResendEmailTransport(api_key=RESEND_KEY, from_email="a@example.com", to_emails="b@example.com")
        json.dumps(payload.build_payload(ALERT))
