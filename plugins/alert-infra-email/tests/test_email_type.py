"""The `email` type (Resend, then SendGrid, then SMTP, with failover), message properties, and leaks."""

from __future__ import annotations

import json
import logging
import re
import traceback
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from alert_infra_email import EmailTransport, build_message, parse_address, parse_recipients
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
    build_transport,
)
from alert_infra.testing import https_server, isolated_plugin_host

USER, PASSWORD = "alerts@example.com", "sm7p-Pa55word-correct-horse"  # as the server in conftest.py accepts
RESEND_KEY = "re_12345678_ResendSecretKeyValue0002"
ALERT = Alert("Queue stuck", "<img src=x onerror=alert(1)> no progress for 10 min", severity="error", source="worker")


def _options(smtp_server: Any, resend_url: str | None = None, **kw: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "from_email": "Alerts <alerts@example.com>",
        "to_emails": ["oncall@example.com"],
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "smtp_username": USER,
        "smtp_password": PASSWORD,
        "timeout": 5,
    }
    if resend_url:
        options.update(resend_api_key=RESEND_KEY, resend_api_url=resend_url)
    options.update(kw)
    return options


class TestFailover:
    def test_resend_503_then_smtp_delivers(self, ca: Any, smtp_server: Any, mailbox: Any) -> None:
        """Resend answers 503: the same alert goes out through SMTP; the result says which provider."""
        with https_server(lambda request: (503, {}, "Service Unavailable"), ca=ca) as resend:
            with isolated_plugin_host(load_entry_points=True):
                channel = build_transport("email", "oncall-mail", _options(smtp_server, resend.url + "/emails"))
            result = AlertDispatcher([channel]).send(ALERT)
            assert len(resend.requests) == 1
        assert result.sent == ("oncall-mail",)
        detail = result.outcome("oncall-mail").detail  # type: ignore[union-attr]
        assert detail is not None and detail.startswith("delivered by smtp after resend: Resend answered HTTP 503")
        (message,) = mailbox.messages
        assert message["Subject"] == "[ERROR] Queue stuck (worker)"

    def test_first_provider_delivers(self, ca: Any, smtp_server: Any, mailbox: Any) -> None:
        with https_server(lambda request: (200, {}, {"id": "1"}), ca=ca) as resend:
            result = AlertDispatcher([EmailTransport(**_options(smtp_server, resend.url + "/emails"))]).send(ALERT)
        assert result.outcomes[0].detail == "delivered by resend" and mailbox.messages == []

    def test_permanent_error_does_not_fail_over(self, ca: Any, smtp_server: Any, mailbox: Any) -> None:
        """A 422 from Resend is a configuration problem: raised, not hidden behind SMTP."""
        answer = (422, {}, {"statusCode": 422, "name": "invalid_from_address", "message": "bad from"})
        with https_server(lambda request: answer, ca=ca) as resend:
            transport = EmailTransport(**_options(smtp_server, resend.url + "/emails"))
            with pytest.raises(NonRetryableAlertTransportError, match="invalid_from_address"):
                transport.send(ALERT)
        assert mailbox.messages == []

    def test_all_fail(self, ca: Any, smtp_server: Any, mailbox: Any) -> None:
        """Resend rate-limited and SMTP answering 451: retryable, naming both, with the shortest wait."""
        mailbox.data_reply = "451 4.3.0 try later"
        with https_server(lambda request: (429, {"retry-after": "5"}, ""), ca=ca) as resend:
            transport = EmailTransport(**_options(smtp_server, resend.url + "/emails"))
            with pytest.raises(RetryableAlertTransportError, match="every email provider failed") as info:
                transport.send(ALERT)
        message = str(info.value)
        assert "resend: Resend answered HTTP 429" in message and "smtp: SMTP server answered 451" in message
        assert info.value.retry_after == 5.0

    def test_order_and_configuration(self) -> None:
        transport = EmailTransport(
            from_email="a@example.com",
            to_emails=["b@example.com"],
            smtp_host="smtp.example.com",
            sendgrid_api_key="SG.x",
            resend_api_key="re_x",
        )
        assert [p for p, _ in transport.providers] == ["resend", "sendgrid", "smtp"]
        assert repr(transport) == "EmailTransport(name='email', providers=['resend', 'sendgrid', 'smtp'])"
        with pytest.raises(AlertConfigurationError, match="at least one provider"):
            EmailTransport(from_email="a@example.com", to_emails=["b@example.com"])


_text = st.text(min_size=1, max_size=300).filter(lambda s: s.strip())
EXPECTED_HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "x-alert-id",
    "x-alert-severity",
    "mime-version",
    "content-type",
}
OUR_TAGS = re.compile(
    r"</?(html|head|body|title|p|strong|br|ul|li|b|table|tr|td|small)\b[^>]*>|<!DOCTYPE html>|"
    r'<meta charset="utf-8">|<th align="left">|</th>|<a href="[^"<>]*">|</a>'
)


class TestMessageProperties:
    """Hypothesis: for any alert the message parses, has exactly the expected headers, and the HTML
    part holds no markup from the alert."""

    @settings(max_examples=150)
    @given(
        title=_text,
        message=_text,
        source=st.one_of(st.none(), st.text(max_size=80)),
        metadata=st.dictionaries(st.text(max_size=30), st.text(max_size=200), max_size=6),
    )
    def test_any_alert(self, title: str, message: str, source: str | None, metadata: dict) -> None:
        alert = Alert(title, message, source=source, metadata=metadata)
        built = build_message(
            alert,
            sender=parse_address("Alerts <alerts@example.com>", field="from_email"),
            recipients=parse_recipients(["ops@example.com"]),
        )
        parsed = BytesParser(policy=policy.default).parsebytes(built.as_bytes())
        assert {k.lower() for k in parsed} == EXPECTED_HEADERS
        assert len(parsed.get_all("to")) == 1 and str(parsed["to"]) == "ops@example.com"
        subject = str(parsed["subject"])
        assert "\n" not in subject and "\r" not in subject and len(subject) <= 200
        html = parsed.get_body(("html",)).get_content()
        assert "<" not in OUR_TAGS.sub("", html)
        assert parsed.get_body(("plain",)).get_content()


class TestNoLeaks:
    def test_failure_scenarios(self, ca: Any, smtp_server: Any, mailbox: Any, caplog: pytest.LogCaptureFixture) -> None:
        """API key and SMTP password never appear in logs, errors, chains or results."""
        seen: list[str] = []
        answers = ((503, {}, ""), (401, {}, {"statusCode": 401, "name": "missing_api_key", "message": "m"}))
        with caplog.at_level(logging.DEBUG):
            logging.getLogger().setLevel(logging.DEBUG)
            for answer in answers:
                with https_server(lambda request, a=answer: a, ca=ca) as resend:
                    for password in (PASSWORD, PASSWORD + "-wrong"):
                        transport = EmailTransport(
                            **_options(smtp_server, resend.url + "/emails", smtp_password=password)
                        )
                        result = AlertDispatcher([transport]).send(ALERT.replace(message=f"{RESEND_KEY} {PASSWORD}"))
                        seen.append(repr(result) + json.dumps(result.to_dict()) + repr(transport))
                        try:
                            transport.send(ALERT)
                        except Exception as exc:
                            seen.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        seen.extend(r.getMessage() for r in caplog.records)
        blob = "\n".join(seen)
        assert "HTTP 503" in blob and "missing_api_key" in blob and "authentication failed" in blob
        assert RESEND_KEY not in blob and PASSWORD not in blob
        assert all(RESEND_KEY not in str(m) and PASSWORD not in str(m) for m in mailbox.messages)
