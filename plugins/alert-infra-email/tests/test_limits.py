"""Every email payload within its documented limits for any alert (issue 10, item 8): subject, headers, sizes."""

from __future__ import annotations

import json
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from alert_infra_email import (
    EmailTransport,
    ResendEmailTransport,
    SendGridEmailTransport,
    SMTPEmailTransport,
    build_message,
    parse_address,
    parse_recipients,
)
from alert_infra_email._limits import BODY_LIMIT, TRUNCATED
from alert_infra_email.message import EmailAddress
from hypothesis import HealthCheck, given, settings

from alert_infra import Alert
from alert_infra.testing import https_server
from alert_infra.testing.strategies import hostile_alerts

API_KEY = "re_limits_S3cretKey_0123456789"
#: Email's own dangerous pieces: header injection (raw and as an RFC 2047 encoded word) and HTML.
EMAIL_PIECES = ("\r\nBcc: victim@example.org", "\nSubject: forged", "=?utf-8?q?hello=0ABcc:_v@x.y?=", "<script>")
HEADERS = {
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


def _one_line(value: str, limit: int) -> None:
    assert value == value.strip() and len(value) <= limit
    assert not any(c in value for c in "\r\n\x00\x0b\x0c\x85\u2028\u2029")


def _check_mime(raw: bytes) -> None:
    """No injected header, every line within RFC 5322's 998 bytes, the subject one line."""
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert {k.lower() for k in parsed} == HEADERS
    _one_line(" ".join(str(parsed["Subject"]).split()), 200)  # unfolding may double a space at a fold
    assert len(raw) <= 2 * BODY_LIMIT * 1.4 + 50_000  # two parts, transfer-encoded, and the headers


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], max_examples=60)
@given(alert=hostile_alerts(*EMAIL_PIECES, max_tags=50, max_metadata=20, max_links=50))
def test_any_alert_within_limits(alert: Alert) -> None:
    """Resend and SendGrid JSON and the SMTP MIME message: subject one line ≤ 200 characters, no CR/LF in any
    header-bound field, strict UTF-8, parts ≤ 1 MB, no injected header."""
    resend = ResendEmailTransport(api_key=API_KEY, from_email="Alerts <a@example.com>", to_emails=["o@example.com"])
    payload = resend.build_payload(alert)
    json.dumps(payload, ensure_ascii=False).encode("utf-8")  # strict
    _one_line(payload["subject"], 200)
    _one_line(payload["headers"]["X-Alert-Id"], 200)
    assert len(payload["text"].encode()) <= BODY_LIMIT and len(payload["html"].encode()) <= BODY_LIMIT
    sendgrid = SendGridEmailTransport(api_key=API_KEY, from_email="a@example.com", to_emails=["o@example.com"])
    payload = sendgrid.build_payload(alert)
    json.dumps(payload, ensure_ascii=False).encode("utf-8")
    _one_line(payload["subject"], 200)
    assert len(json.dumps(payload["custom_args"]).encode()) <= 10_000  # SendGrid's custom_args limit
    for value in payload["custom_args"].values():
        _one_line(value, 200)
    assert all(len(part["value"].encode()) <= BODY_LIMIT and part["value"] for part in payload["content"])
    sender = parse_address("Alerts <a@example.com>", field="from_email")
    _check_mime(build_message(alert, sender=sender, recipients=parse_recipients(["o@example.com"])).as_bytes())


def _maximal_alert() -> Alert:
    return Alert(
        "Disk\r\nBcc: victim@example.org\n😀" * 500,
        "<script>&\"'😀\x01" * 400_000,
        source="s\u2028" * 500,
        metadata={f"k{i}": "é<&>" * 3000 for i in range(300)},
        links=[(f"Runbook {i}", "https://runbooks.example/" + "a" * 2000) for i in range(200)],
    )


def test_maximal_alert_over_smtp(smtp_server: Any, mailbox: Any, trust: str) -> None:
    """A maximal alert reaches the real SMTP server (STARTTLS) as one message with exactly our headers."""
    transport = SMTPEmailTransport(
        host="localhost", port=smtp_server.port, from_email="a@example.com", to_emails=["o@example.com"], timeout=20
    )
    transport.send(_maximal_alert())
    (message,) = mailbox.messages
    assert {k.lower() for k in message} - {"x-peer", "x-mailfrom", "x-rcptto"} == HEADERS
    assert TRUNCATED in message.get_body(("plain",)).get_content()


def test_maximal_alert_over_resend() -> None:
    """The real HTTPS fake receives a bounded body (a few MB at most) for a maximal alert."""
    sizes: list[int] = []

    def handler(request: Any) -> tuple[int, dict[str, str], Any]:
        sizes.append(len(request.body))
        return 200, {}, {"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}

    with https_server(handler) as server:
        ResendEmailTransport(
            api_key=API_KEY, from_email="a@example.com", to_emails=["o@example.com"], api_url=server.url + "/emails"
        ).send(_maximal_alert())
    assert sizes and sizes[0] <= 2 * 6 * BODY_LIMIT + 50_000  # two parts as ASCII-escaped JSON, and the rest


def test_encoded_word_cannot_forge_a_header() -> None:
    """Regression: a title with an RFC 2047 encoded word holding CR/LF put a forged Bcc header on the wire."""
    alert = Alert("T=?utf-8?q?hello=0ABcc:_victim@example.org?=", "m")
    sender = parse_address("a@example.com", field="from_email")
    raw = build_message(alert, sender=sender, recipients=parse_recipients(["o@example.com"])).as_bytes()
    assert b"\nBcc" not in raw
    _check_mime(raw)


@pytest.mark.parametrize("cls", [ResendEmailTransport, SendGridEmailTransport, SMTPEmailTransport, EmailTransport])
def test_repr_half_built_and_built(cls: type) -> None:
    """repr() works on a half-built instance and never shows a key or password."""
    assert cls.__name__ in repr(object.__new__(cls))
    assert "EmailAddress" in repr(object.__new__(EmailAddress))
    built = EmailTransport(from_email="a@example.com", to_emails=["o@example.com"], resend_api_key=API_KEY)
    assert API_KEY not in repr(built) and API_KEY not in repr(built.providers[0][1])
