"""SMTPEmailTransport against a real SMTP server (aiosmtpd, STARTTLS, AUTH) on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from alert_infra_email import SMTPEmailTransport

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    build_transport,
)
from alert_infra.testing import isolated_plugin_host, unused_port

USER, PASSWORD = "alerts@example.com", "sm7p-Pa55word-correct-horse"  # as the server in conftest.py accepts
Mailbox = SMTPServer = Any


def smtp(server: Any, **kw: Any) -> SMTPEmailTransport:
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "from_email": "Alerts <alerts@example.com>",
        "to_emails": ["ops@example.com", "sec@example.com"],
        "username": USER,
        "password": PASSWORD,
        "timeout": 5,
    }
    options.update(kw)
    return SMTPEmailTransport(**options)


ALERT = Alert(
    "Payment failed",
    "<script>alert(1)</script> provider said 503",
    severity="critical",
    source="billing",
    metadata={"invoice": "<b>INV-1</b>", "note": "<script>steal()</script>", "api_key": "sk_live_abcdefghij1234567890"},
    links={"Runbook": "https://runbooks.example/pay?a=1&b=<2>"},
)


class TestDelivery:
    def test_starttls_auth_delivery(self, trust: str, smtp_server: SMTPServer, mailbox: Mailbox) -> None:
        """STARTTLS (verified against the CA in SSL_CERT_FILE), AUTH, a multipart message."""
        with isolated_plugin_host(load_entry_points=True):
            channel = build_transport(
                "smtp",
                "mail",
                {
                    "host": smtp_server.host,
                    "port": smtp_server.port,
                    "from_email": "Alerts <alerts@example.com>",
                    "to_emails": "ops@example.com, sec@example.com",
                    "username": USER,
                    "password": PASSWORD,
                },
            )
        result = AlertDispatcher([channel]).send(ALERT)
        assert result.sent == ("mail",), result.outcomes
        (message,) = mailbox.messages
        assert mailbox.envelopes == [("alerts@example.com", ["ops@example.com", "sec@example.com"])]
        assert mailbox.logins == [USER]
        assert message["Subject"] == "[CRITICAL] Payment failed (billing)"
        assert message["From"] == "Alerts <alerts@example.com>" and message["X-Alert-Severity"] == "critical"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert "<script>alert(1)</script>" in text and "[REDACTED]" in text and "sk_live" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
        assert "&lt;b&gt;INV-1&lt;/b&gt;" in html and "&lt;script&gt;steal()&lt;/script&gt;" in html
        assert 'href="https://runbooks.example/pay?a=1&amp;b=&lt;2&gt;"' in html

    def test_implicit_tls(self, trust: str, smtps_server: SMTPServer, mailbox: Mailbox) -> None:
        smtp(smtps_server, use_tls=False, use_ssl=True).send(ALERT)
        assert len(mailbox.messages) == 1

    def test_crlf_in_title_injects_no_header(self, trust: str, smtp_server: SMTPServer, mailbox: Mailbox) -> None:
        """A title with CR/LF and a would-be Bcc header arrives as one subject line, no extra header."""
        smtp(smtp_server).send(Alert("Disk full\r\nBcc: victim@evil.example\r\nX-Evil: 1", "m"))
        (message,) = mailbox.messages
        assert message["Bcc"] is None and message["X-Evil"] is None
        assert message["Subject"] == "[ERROR] Disk full Bcc: victim@evil.example X-Evil: 1"
        assert mailbox.envelopes[0][1] == ["ops@example.com", "sec@example.com"]


class TestFailures:
    def test_untrusted_certificate_fails(self, smtp_server: SMTPServer, mailbox: Mailbox) -> None:
        """Without the CA trusted, STARTTLS fails verification: non-retryable, nothing sent, no AUTH."""
        with pytest.raises(NonRetryableAlertTransportError, match="certificate is not trusted") as caught:
            smtp(smtp_server).send(ALERT)
        assert mailbox.messages == [] and mailbox.logins == []
        # It says what to do: the variables Python's default context reads (not REQUESTS_CA_BUNDLE).
        assert "set SSL_CERT_FILE to a PEM file" in str(caught.value) and "SSL_CERT_DIR" in str(caught.value)
        assert "REQUESTS_CA_BUNDLE" not in str(caught.value) and PASSWORD not in str(caught.value)

    def test_bad_credentials(self, trust: str, smtp_server: SMTPServer) -> None:
        with pytest.raises(NonRetryableAlertTransportError, match="authentication failed"):
            smtp(smtp_server, password="wrong-password").send(ALERT)

    @pytest.mark.parametrize(
        ("reply", "error"),
        [
            ("451 4.3.0 Temporary local problem", RetryableAlertTransportError),
            ("452 4.3.1 Insufficient system storage", RetryableAlertTransportError),
            ("554 5.7.1 Message rejected as spam", NonRetryableAlertTransportError),
            ("552 5.3.4 Message too big", NonRetryableAlertTransportError),
        ],
    )
    def test_data_replies(self, trust: str, smtp_server: SMTPServer, mailbox: Mailbox, reply: str, error: type) -> None:
        """4xx after DATA is retryable, 5xx permanent; the server's text is in the message."""
        mailbox.data_reply = reply
        with pytest.raises(error) as info:
            smtp(smtp_server).send(ALERT)
        assert type(info.value) is error and reply.split(" ", 2)[2] in str(info.value)

    def test_partly_refused_recipients_reported(self, trust: str, smtp_server: SMTPServer, mailbox: Mailbox) -> None:
        """One of two recipients refused: reported (not silently dropped), not retried."""
        mailbox.rcpt_replies["sec@example.com"] = "550 5.1.1 No such user"
        with pytest.raises(NonRetryableAlertTransportError, match=r"refused 1 of 2 recipients: sec@example.com \(550"):
            smtp(smtp_server).send(ALERT)
        assert mailbox.envelopes == [("alerts@example.com", ["ops@example.com"])]

    @pytest.mark.parametrize(
        ("code", "error"), [("450 4.2.1 Mailbox busy", RetryableAlertTransportError), ("550 5.1.1 No", None)]
    )
    def test_all_recipients_refused(
        self, trust: str, smtp_server: SMTPServer, mailbox: Mailbox, code: str, error: Any
    ) -> None:
        mailbox.rcpt_replies = {"ops@example.com": code, "sec@example.com": code}
        with pytest.raises(error or NonRetryableAlertTransportError, match="refused every recipient"):
            smtp(smtp_server).send(ALERT)

    def test_slow_server_times_out(self, trust: str, smtp_server: SMTPServer, mailbox: Mailbox) -> None:
        mailbox.data_delay = 3.0
        with pytest.raises(RetryableAlertTransportError, match=r"did not answer in time \(timeout"):
            smtp(smtp_server, timeout=0.5).send(ALERT)

    def test_refused_connection(self) -> None:
        with pytest.raises(RetryableAlertTransportError, match="connection failed"):
            SMTPEmailTransport(
                host="127.0.0.1", port=unused_port(), from_email="a@example.com", to_emails=["b@example.com"]
            ).send(ALERT)

    def test_no_starttls_offered(self, trust: str, mailbox: Mailbox) -> None:
        """A server without STARTTLS is refused when use_tls is set (no clear-text fallback)."""
        from aiosmtpd.controller import Controller

        port = unused_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            with pytest.raises(NonRetryableAlertTransportError, match="does not offer STARTTLS"):
                SMTPEmailTransport(
                    host="127.0.0.1", port=port, from_email="a@example.com", to_emails=["b@example.com"]
                ).send(ALERT)
        finally:
            controller.stop()


class TestConfiguration:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"host": ""}, "host is required"),
            ({"host": "smtp://x"}, "host is required"),
            ({"port": "abc"}, "port must be a number"),
            ({"port": 70000}, "between 1 and 65535"),
            ({"from_email": "not an address"}, "from_email is not a valid email address"),
            ({"from_email": "a@example.com\r\nRCPT TO:<evil@x.y>"}, "from_email contains control characters"),
            ({"to_emails": []}, "at least one recipient"),
            ({"to_emails": ["ok@example.com", "alice@example.org)<bob@example.org>"]}, r"to_emails\[1\]"),
            ({"use_tls": True, "use_ssl": True}, "exclude each other"),
            ({"use_tls": False}, "refusing to send a password without TLS"),
            ({"username": "u", "password": None}, "go together"),
            ({"reply_to": "bad"}, "reply_to"),
        ],
    )
    def test_invalid(self, kwargs: dict, message: str) -> None:
        options: dict[str, Any] = {
            "host": "smtp.example.com",
            "from_email": "a@example.com",
            "to_emails": ["b@example.com"],
            "username": "u",
            "password": PASSWORD,
        }
        options.update(kwargs)
        with pytest.raises(AlertConfigurationError, match=message) as info:
            SMTPEmailTransport(**options)
        assert PASSWORD not in str(info.value)

    def test_01x_sender_and_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """0.1.x: the sender injection point and from_env with the 0.1.x variables."""
        from alert_infra.email import SMTPEmailTransport as Compat

        calls = []

        def sender(recipients, subject, body, html):  # type: ignore[no-untyped-def]
            calls.append((recipients, subject, body, html))

        transport = Compat(
            host="smtp.example.com", from_email="alerts@example.com", to_emails=["ops@example.com"], sender=sender
        )
        transport.send(Alert(title="Payment failed", message="Failed", metadata={"api_key": "secret"}))
        assert "secret" not in calls[0][2] and "[REDACTED]" in calls[0][2]
        assert transport.name == "email.smtp"
        for key, value in {
            "ALERT_FROM_EMAIL": "alerts@example.com",
            "ALERT_TO_EMAILS": "ops@example.com,security@example.com",
            "ALERT_SMTP_HOST": "smtp.example.com",
            "ALERT_SMTP_PORT": "587",
            "ALERT_SMTP_USERNAME": "alerts@example.com",
            "ALERT_SMTP_PASSWORD": "from-secret-manager",
            "ALERT_SMTP_USE_TLS": "true",
        }.items():
            monkeypatch.setenv(key, value)
        built = Compat.from_env()
        assert (built.host, built.port, built.to_emails) == (
            "smtp.example.com",
            587,
            ["ops@example.com", "security@example.com"],
        )
        monkeypatch.setenv("ALERT_SMTP_USE_TLS", "maybe")
        with pytest.raises(AlertConfigurationError, match="ALERT_SMTP_USE_TLS"):
            Compat.from_env()
