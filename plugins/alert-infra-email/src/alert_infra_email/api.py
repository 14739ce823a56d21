"""``ResendEmailTransport`` and ``SendGridEmailTransport``: email through HTTP APIs."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from alert_infra import AlertConfigurationError
from alert_infra.http import HttpResponse, HttpTransport, parse_retry_after, raise_for_status

from ._limits import header_value
from .message import (
    format_alert_body,
    format_alert_html,
    format_alert_subject,
    idempotency_key,
    parse_address,
    parse_recipients,
)

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["RESEND_API_URL", "SENDGRID_API_URL", "ResendEmailTransport", "SendGridEmailTransport"]

RESEND_API_URL = "https://api.resend.com/emails"
SENDGRID_API_URL = "https://api.sendgrid.com/v3/mail/send"


def split_env_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


class _ApiEmailTransport(HttpTransport):
    """What Resend and SendGrid share: options, validation, the HTTP channel."""

    provider = "Email"
    default_name = "email"
    default_api_url = ""
    max_recipients = 1000
    env_prefix = ""
    secret_fields = ("api_key",)

    def __init__(
        self,
        *,
        api_key: str,
        from_email: str,
        to_emails: Any,
        timeout: float = 8.0,
        api_url: str | None = None,
        http_client: Any = None,
        reply_to: str | None = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        """
        Args:
            api_key: the provider's API key (sent as a bearer token; masked everywhere).
            from_email: the sender, ``alerts@example.com`` or ``Alerts <alerts@example.com>``,
                on a domain verified with the provider.
            to_emails: the recipients: a list, or one string of addresses separated by commas.
            timeout: seconds one try may take (connect and read).
            api_url: the API endpoint (default the provider's own; an https URL, for a proxy
                or a test server).
            http_client: code only: an object with ``post(url, *, json, headers, timeout)``
                (0.1.x injection point).
            reply_to: the address replies go to (default the sender).
            name: the channel name.
            format: a formatter name (default, compact, or one a plugin registers).
        """
        super().__init__(timeout=timeout, http_client=http_client, name=name or self.default_name, format=format)
        self.api_key = self.secret_option("api_key", api_key)
        self.sender = parse_address(from_email, field="from_email")
        self.recipients = parse_recipients(to_emails)
        if len(self.recipients) > self.max_recipients:
            raise AlertConfigurationError(
                f"to_emails: {self.provider} accepts at most {self.max_recipients} recipients per message"
            )
        self.reply_to = parse_address(reply_to, field="reply_to") if reply_to else None
        self.api_url = self.url_option("api_url", api_url or self.default_api_url)

    # 0.1.x attribute names
    @property
    def from_email(self) -> str:
        return self.sender.header()

    @property
    def to_emails(self) -> list[str]:
        return [r.addr for r in self.recipients]

    @classmethod
    def from_env(cls, *, prefix: str | None = None, **kwargs: Any) -> Any:
        """Build from ``<prefix>API_KEY``, ``ALERT_FROM_EMAIL`` and ``ALERT_TO_EMAILS`` (0.1.x names)."""
        prefix = prefix or cls.env_prefix
        api_key = os.getenv(f"{prefix}API_KEY")
        if not api_key:
            raise AlertConfigurationError(f"{prefix}API_KEY is required")
        from_email = os.getenv("ALERT_FROM_EMAIL") or os.getenv(f"{prefix}FROM_EMAIL") or ""
        to_emails = split_env_list(os.getenv("ALERT_TO_EMAILS") or os.getenv(f"{prefix}TO_EMAILS"))
        return cls(api_key=api_key, from_email=from_email, to_emails=to_emails, **kwargs)

    def _bodies(self, alert: Alert) -> tuple[str, str, str]:
        rendered = self.render(alert)
        return format_alert_subject(alert), format_alert_body(alert, rendered), format_alert_html(alert, rendered)

    def endpoint(self, alert: Alert) -> str:
        return self.api_url

    def request_headers(self, alert: Alert) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


class ResendEmailTransport(_ApiEmailTransport):
    """Send alerts through Resend's ``POST /emails`` (type ``resend``).

    Every request carries an ``Idempotency-Key`` derived from the alert occurrence
    and the channel, so a retried request (after a timeout, say) can never send
    the email twice. Quota errors are retryable with a long ``retry_after`` so the
    ``email`` type fails over to the next provider.
    """

    name = "resend"
    provider = "Resend"
    default_name = "email.resend"
    default_api_url = RESEND_API_URL
    max_recipients = 50
    env_prefix = "ALERT_RESEND_"

    def build_payload(self, alert: Alert) -> dict[str, Any]:
        subject, text, html = self._bodies(alert)
        payload: dict[str, Any] = {
            "from": self.sender.header(),
            "to": [r.header() for r in self.recipients],
            "subject": subject,
            "text": text,
            "html": html,
            "headers": {"X-Alert-Id": header_value(alert.correlation_id)},
            "tags": [{"name": "severity", "value": alert.severity}],
        }
        if self.reply_to is not None:
            payload["reply_to"] = self.reply_to.header()
        return payload

    def request_headers(self, alert: Alert) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": idempotency_key(alert, self.name)}

    def check_response(self, response: HttpResponse) -> None:
        if 200 <= response.status < 300:
            return
        body = response.json()
        code = body.get("name") if isinstance(body, dict) and isinstance(body.get("name"), str) else None
        message = body.get("message") if isinstance(body, dict) and isinstance(body.get("message"), str) else None
        detail = ": ".join(p for p in (code, message) if p) or None
        retryable = None
        retry_after = None
        if code == "concurrent_idempotent_requests":
            retryable, retry_after = True, 1.0
        elif code == "invalid_idempotent_request":
            retryable = False
        elif code == "daily_quota_exceeded":
            retryable, retry_after = True, 3600.0
        elif code == "monthly_quota_exceeded":
            retryable, retry_after = True, 86400.0
        elif response.status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after")) or parse_retry_after(
                response.headers.get("ratelimit-reset")
            )
        raise_for_status(response, provider="Resend", detail=detail, retryable=retryable, retry_after=retry_after)


class SendGridEmailTransport(_ApiEmailTransport):
    """Send alerts through SendGrid's ``POST /v3/mail/send`` (type ``sendgrid``).

    Click and open tracking are off (runbook links stay as written); the alert id
    travels in ``custom_args`` so duplicates after a retried timeout are
    recognisable (SendGrid has no idempotency key).
    """

    name = "sendgrid"
    provider = "SendGrid"
    default_name = "email.sendgrid"
    default_api_url = SENDGRID_API_URL
    max_recipients = 1000
    env_prefix = "ALERT_SENDGRID_"

    def build_payload(self, alert: Alert) -> dict[str, Any]:
        subject, text, html = self._bodies(alert)

        def person(address: Any) -> dict[str, str]:
            entry = {"email": address.addr}
            if address.name:
                entry["name"] = address.name.replace(",", " ").replace(";", " ")
            return entry

        payload: dict[str, Any] = {
            "personalizations": [{"to": [person(r) for r in self.recipients]}],
            "from": person(self.sender),
            "subject": subject,
            "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
            "categories": ["alert-infra", alert.severity],
            "custom_args": {
                "alert_id": header_value(alert.correlation_id),
                "severity": alert.severity,
                "fingerprint": header_value(alert.fingerprint),
            },
            "tracking_settings": {"click_tracking": {"enable": False}, "open_tracking": {"enable": False}},
        }
        if self.reply_to is not None:
            payload["reply_to"] = person(self.reply_to)
        return payload

    def check_response(self, response: HttpResponse) -> None:
        if 200 <= response.status < 300:
            return  # 202 accepted (200 in sandbox mode)
        body = response.json()
        detail = None
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            messages = [str(e.get("message")) for e in body["errors"][:3] if isinstance(e, dict) and e.get("message")]
            detail = "; ".join(messages) or None
        retry_after = None
        if response.status == 429:
            reset = response.headers.get("x-ratelimit-reset")
            try:
                retry_after = max(1.0, float(reset) - time.time()) if reset else None
            except ValueError:
                retry_after = None
        raise_for_status(response, provider="SendGrid", detail=detail, retry_after=retry_after)
