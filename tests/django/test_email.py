"""``EMAIL["BACKEND"] = "django"``: ``EmailMultiAlternatives`` through the project's email backend,
with the 0.1.x README's templates, through Django's locmem backend and its real SMTP backend (a
real SMTP server with STARTTLS and AUTH)."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings

from alert_infra import Alert
from alert_infra.django import DjangoEmailTransport, send_alert
from alert_infra.exceptions import AlertConfigurationError

# The README's "Django email templates" settings block, as written.
README_TEMPLATES = {
    "EMAIL": {
        "ENABLED": True,
        "BACKEND": "django",
        "FROM_EMAIL": "alerts@example.com",
        "TO_EMAILS": ["ops@example.com"],
        "SUBJECT_TEMPLATE": "alerts/email_subject.txt",
        "BODY_TEMPLATE": "alerts/email_body.txt",
        "HTML_TEMPLATE": "alerts/email_body.html",
        "TEMPLATE_CONTEXT": {"product_name": "Billing Portal"},
    }
}


def test_readme_templates_through_locmem(alert_infra_settings, outbox) -> None:
    with alert_infra_settings(README_TEMPLATES):
        result = send_alert(
            title="Invoice <b>paid</b> twice",
            message="Charge & refund: <script>alert(1)</script>",
            severity="error",
            source="billing",
            metadata={"invoice_id": "INV-1001", "api_key": "sk_live_should_not_leave"},
        )
    assert result.sent == ("email.django",)
    assert len(outbox) == 1
    message = outbox[0]
    assert message.subject == "Billing Portal ERROR: Invoice <b>paid</b> twice"  # text: not escaped
    assert message.from_email == "alerts@example.com" and message.to == ["ops@example.com"]
    assert "Charge & refund: <script>alert(1)</script>" in message.body  # a text body is not HTML-escaped
    assert "Source: billing" in message.body and "Invoice: INV-1001" in message.body
    assert "Correlation ID: " in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert "<h1>Invoice &lt;b&gt;paid&lt;/b&gt; twice</h1>" in html  # HTML is autoescaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "sk_live_should_not_leave" not in message.body + html


def test_template_name_spellings_and_the_0_1_context_names(alert_infra_settings, outbox, tmp_path) -> None:
    """*_TEMPLATE_NAME spellings; the context has alert, alert_dict, metadata, tags and
    TEMPLATE_CONTEXT, with the 0.1.x names winning over a static value of the same name."""
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "subject.txt").write_text("{{ team }}\n{{ alert_dict.severity }}\r\n{{ alert.title }}\n\n")
    (tmp_path / "alerts" / "body.txt").write_text("{{ tags|join:',' }} {{ metadata.order }} {{ alert }}")
    (tmp_path / "alerts" / "body.html").write_text("<p>{{ alert_dict.title }}</p>")
    templates = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [str(tmp_path)]}]
    config = {
        "EMAIL": {
            "ENABLED": True,
            "BACKEND": "django",
            "FROM_EMAIL": "alerts@example.com",
            "TO_EMAILS": "ops@example.com, oncall@example.com",
            "SUBJECT_TEMPLATE_NAME": "alerts/subject.txt",
            "BODY_TEMPLATE_NAME": "alerts/body.txt",
            "HTML_TEMPLATE_NAME": "alerts/body.html",
            "TEMPLATE_CONTEXT": {"team": "Payments", "alert": "static values never replace the alert"},
        }
    }
    with alert_infra_settings(config, TEMPLATES=templates):
        result = send_alert(title="Refund failed", message="m", tags=("billing", "refunds"), metadata={"order": 7})
    assert result.sent == ("email.django",)
    message = outbox[0]
    assert message.subject == "Payments error Refund failed"  # every line break collapsed: one line
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.body.startswith("billing,refunds 7 ") and "static values" not in message.body
    assert message.alternatives[0][0] == "<p>Refund failed</p>"


def test_default_rendering_without_templates(alert_infra_settings, outbox) -> None:
    config = {
        "EMAIL": {"ENABLED": True, "BACKEND": "django", "FROM_EMAIL": "a@example.com", "TO_EMAILS": ["b@example.com"]}
    }
    with alert_infra_settings(config):
        send_alert(title="Disk <full>\nsecond line", message="/var is at 97%", severity="warning")
    message = outbox[0]
    assert "\n" not in message.subject and "Disk <full>" in message.subject
    assert "/var is at 97%" in message.body
    assert "Disk &lt;full&gt;" in message.alternatives[0][0]


def test_a_missing_template_fails_the_channel_without_retry(alert_infra_settings, outbox) -> None:
    config = {
        "EMAIL": {
            "ENABLED": True,
            "BACKEND": "django",
            "FROM_EMAIL": "a@example.com",
            "TO_EMAILS": ["b@example.com"],
            "BODY_TEMPLATE": "alerts/no_such_template.txt",
        },
        "RETRY": {"attempts": 3, "backoff": 0.01},
    }
    with alert_infra_settings(config):
        result = send_alert(title="t", message="m")
    assert result.failed == {"email.django": "AlertConfigurationError"}
    assert result.non_retryable == ("email.django",) and result.outcomes[0].attempts == 1
    assert "alerts/no_such_template.txt" in (result.outcomes[0].reason or "")
    assert outbox == []


def test_readme_django_smtp_backend_settings_with_a_real_server(
    alert_infra_settings, smtp_server, smtp_login, outbox
) -> None:
    """The README's "Django email backend configuration": EMAIL_BACKEND = smtp with STARTTLS and
    AUTH, and BACKEND = "django"; a real SMTP server receives the templated message."""
    user, password = smtp_login
    django_mail = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": smtp_server.host,
        "EMAIL_PORT": smtp_server.port,
        "EMAIL_HOST_USER": user,
        "EMAIL_HOST_PASSWORD": password,
        "EMAIL_USE_TLS": True,
    }
    with alert_infra_settings(README_TEMPLATES, **django_mail):
        result = send_alert(title="Payment failed", message="Provider returned 503", metadata={"invoice_id": "INV-7"})
    assert result.sent == ("email.django",), result.failed
    received = smtp_server.mailbox.messages[0]
    assert received["Subject"] == "Billing Portal ERROR: Payment failed"
    assert received["To"] == "ops@example.com"
    parts = {part.get_content_type(): part.get_content() for part in received.walk() if not part.is_multipart()}
    assert "Invoice: INV-7" in parts["text/plain"] and "<h1>Payment failed</h1>" in parts["text/html"]
    assert outbox == []


def test_smtp_authentication_failure_is_permanent_and_secret_free(
    alert_infra_settings, smtp_server, smtp_login, caplog
) -> None:
    user, _ = smtp_login
    wrong = "wrong-Pa55-Zk93-secret"
    caplog.set_level(logging.DEBUG)
    with alert_infra_settings(
        README_TEMPLATES,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=smtp_server.host,
        EMAIL_PORT=smtp_server.port,
        EMAIL_HOST_USER=user,
        EMAIL_HOST_PASSWORD=wrong,
        EMAIL_USE_TLS=True,
    ):
        result = send_alert(title="t", message="m")
    assert result.failed == {"email.django": "NonRetryableAlertTransportError"}
    assert "SMTPAuthenticationError" in (result.outcomes[0].reason or "")
    everything = repr(result.to_dict()) + caplog.text
    assert wrong not in everything


def test_an_unreachable_backend_is_retryable(alert_infra_settings) -> None:
    from alert_infra.testing import unused_port

    with alert_infra_settings(
        {**README_TEMPLATES, "RETRY": False},
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=unused_port(),
    ):
        result = send_alert(title="t", message="m")
    assert result.retryable == ("email.django",)
    assert result.failed == {"email.django": "RetryableAlertTransportError"}


def test_django_email_type_in_channels_and_direct_construction(alert_infra_settings, outbox) -> None:
    config = {
        "CHANNELS": {
            "ops-mail": {"type": "django_email", "from_email": "alerts@example.com", "to_emails": ["ops@example.com"]}
        }
    }
    with alert_infra_settings(config):
        assert send_alert(title="From CHANNELS", message="m").sent == ("ops-mail",)
    assert outbox[0].subject.endswith("From CHANNELS")
    transport = DjangoEmailTransport(from_email="alerts@example.com", to_emails=["ops@example.com"])
    assert transport.name == "email.django"  # the 0.1.x name
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        transport.send(Alert(title="Direct", message="m"))
    assert outbox[-1].subject.endswith("Direct")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"from_email": "", "to_emails": ["a@example.com"]}, "from_email"),
        ({"from_email": "a@example.com", "to_emails": []}, "to_emails"),
        ({"from_email": "a@example.com", "to_emails": ["not-an-address"]}, "to_emails"),
        ({"from_email": "a@example.com\r\nBcc: x@example.com", "to_emails": ["a@example.com"]}, "from_email"),
        ({"from_email": "a@example.com", "to_emails": ["a@example.com"], "timeout": 0}, "timeout"),
        (
            {"from_email": "a@example.com", "to_emails": ["a@example.com"], "template_context": ["x"]},
            "template_context",
        ),
    ],
)
def test_bad_transport_options_are_clear_errors(kwargs, words) -> None:
    with pytest.raises(AlertConfigurationError, match=words):
        DjangoEmailTransport(**kwargs)
