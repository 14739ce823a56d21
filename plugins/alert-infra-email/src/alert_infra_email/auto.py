"""``EmailTransport`` (type ``email``): Resend, then SendGrid, then SMTP, with failover."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alert_infra import AlertConfigurationError, BaseTransport, RetryableAlertTransportError

from .api import ResendEmailTransport, SendGridEmailTransport
from .smtp import SMTPEmailTransport

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["EmailTransport"]


class EmailTransport(BaseTransport):
    """Email through whichever providers are configured, in the order Resend, SendGrid, SMTP.

    0.1.x's Django ``auto`` backend picked the first configured provider; this
    goes further: when the chosen provider fails with a *retryable* error (an
    outage, a rate limit, a quota), the next configured one is tried for the
    same alert. A permanent error (a rejected sender address, say) is raised at
    once, since another provider would only hide a configuration mistake.
    ``send`` returns ``"delivered by <provider>"`` (plus what failed before),
    which the dispatcher reports as the outcome's ``detail``.
    """

    name = "email"
    secret_fields = ("resend_api_key", "sendgrid_api_key", "smtp_password")

    def __init__(
        self,
        *,
        from_email: str,
        to_emails: Any,
        resend_api_key: str | None = None,
        sendgrid_api_key: str | None = None,
        smtp_host: str | None = None,
        smtp_port: int = 587,
        smtp_username: str | None = None,
        smtp_password: str | None = None,
        smtp_use_tls: bool = True,
        smtp_use_ssl: bool = False,
        timeout: float = 8.0,
        reply_to: str | None = None,
        resend_api_url: str | None = None,
        sendgrid_api_url: str | None = None,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        """
        Args:
            from_email: the sender, ``alerts@example.com`` or ``Alerts <alerts@example.com>``.
            to_emails: the recipients: a list, or one string of addresses separated by commas.
            resend_api_key: a Resend API key: Resend is tried first (masked everywhere).
            sendgrid_api_key: a SendGrid API key: tried next (masked everywhere).
            smtp_host: an SMTP server's host name: tried last.
            smtp_port: its port: 587 for STARTTLS, 465 for implicit TLS.
            smtp_username: the SMTP AUTH user name (no AUTH when unset).
            smtp_password: the SMTP AUTH password (masked everywhere).
            smtp_use_tls: upgrade the SMTP connection with STARTTLS, verifying the certificate.
            smtp_use_ssl: connect to SMTP with implicit TLS (port 465) instead.
            timeout: seconds one try of one provider may take (connect and read).
            reply_to: the address replies go to (default the sender).
            resend_api_url: Resend's endpoint (default its own; for a proxy or a test server).
            sendgrid_api_url: SendGrid's endpoint (default its own; for a proxy or a test server).
            http_client: code only: an object with ``post(url, *, json, headers, timeout)``
                (0.1.x injection point).
            name: the channel name.
            format: a formatter name (default, compact, or one a plugin registers).
        """
        super().__init__(name=name, format=format)
        self.resend_api_key, self.sendgrid_api_key, self.smtp_password = resend_api_key, sendgrid_api_key, smtp_password
        self.register_secrets()
        common = {"from_email": from_email, "to_emails": to_emails, "timeout": timeout, "reply_to": reply_to}
        self.providers: list[tuple[str, Any]] = []
        channel = self.name
        if resend_api_key:
            self.providers.append(
                (
                    "resend",
                    ResendEmailTransport(
                        api_key=resend_api_key,
                        api_url=resend_api_url,
                        http_client=http_client,
                        name=channel,
                        format=format,
                        **common,
                    ),
                )
            )
        if sendgrid_api_key:
            self.providers.append(
                (
                    "sendgrid",
                    SendGridEmailTransport(
                        api_key=sendgrid_api_key,
                        api_url=sendgrid_api_url,
                        http_client=http_client,
                        name=channel,
                        format=format,
                        **common,
                    ),
                )
            )
        if smtp_host:
            self.providers.append(
                (
                    "smtp",
                    SMTPEmailTransport(
                        host=smtp_host,
                        port=smtp_port,
                        username=smtp_username,
                        password=smtp_password,
                        use_tls=smtp_use_tls,
                        use_ssl=smtp_use_ssl,
                        name=channel,
                        format=format,
                        **common,
                    ),
                )
            )
        if not self.providers:
            raise AlertConfigurationError(
                "email: configure at least one provider: resend_api_key, sendgrid_api_key or smtp_host"
            )

    def send(self, alert: Alert) -> str:
        failures: list[str] = []
        waits: list[float] = []
        for provider, transport in self.providers:
            try:
                transport.send(alert)
            except RetryableAlertTransportError as exc:
                failures.append(f"{provider}: {exc}")
                if exc.retry_after is not None:
                    waits.append(exc.retry_after)
                continue
            note = f"delivered by {provider}"
            return note + (f" after {'; '.join(failures)}" if failures else "")
        raise RetryableAlertTransportError(
            "every email provider failed: " + "; ".join(failures), retry_after=min(waits) if waits else None
        )

    def close(self) -> None:
        for _, transport in self.providers:
            transport.close()

    def __repr__(self) -> str:
        # Safe on a half-built instance (``object.__new__``); provider names only, never a key.
        providers = [p for p, _ in getattr(self, "providers", ())]
        return f"EmailTransport(name={self.name!r}, providers={providers!r})"
