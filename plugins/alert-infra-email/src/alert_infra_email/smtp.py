"""``SMTPEmailTransport``: email through an SMTP server, TLS always verified."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

from alert_infra import (
    AlertConfigurationError,
    BaseTransport,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from alert_infra.security import redact_text

from .api import split_env_list
from .message import (
    build_message,
    format_alert_body,
    format_alert_html,
    format_alert_subject,
    parse_address,
    parse_recipients,
)

if TYPE_CHECKING:
    import smtplib

    from alert_infra import Alert

__all__ = ["SMTPEmailTransport"]

EmailSender = Callable[[Sequence[str], str, str, str], None]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool_env(name: str, default: bool) -> bool:
    value = os.getenv(name)
    if value is None or not value.strip():
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise AlertConfigurationError(f"{name} must be one of true, false, 1, 0, yes, no")


def _reply_text(raw: object) -> str:
    """A server reply (bytes or str) as one short, redacted line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return redact_text(" ".join(text.split()))[:200]


class SMTPEmailTransport(BaseTransport):
    """Send alerts through an SMTP server (type ``smtp``).

    * ``use_tls`` (default) upgrades with STARTTLS and ``use_ssl`` uses implicit
      TLS (port 465); both **verify the server's certificate and host name**
      against the system trust store (``SSL_CERT_FILE`` works). A server that
      does not offer STARTTLS when ``use_tls`` is set is an error, never a
      silent plain-text fallback.
    * AUTH is only sent over TLS unless ``allow_insecure_auth=True``.
    * 4xx replies are retryable, 5xx permanent; a partly refused recipient list
      is reported as a failure naming the refused addresses (the others got the
      message, so it is not retried).
    * The password is never logged (smtplib's debug output is never enabled).

    ``sender`` is 0.1.x's injection point: ``sender(recipients, subject, body, html)``.
    """

    name = "smtp"
    secret_fields = ("password",)
    #: ``alert-infra send --to mailto://…``: see :meth:`from_url`.
    url_schemes: ClassVar[tuple[str, ...]] = ("mailto", "mailtos")
    url_form: ClassVar[str] = (
        "mailto://USER:PASSWORD@smtp.example.com[:587]?from=alerts@example.com&to=a@example.com,b@example.com"
        " (mailtos:// for implicit TLS on 465)"
    )

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> SMTPEmailTransport:
        """Build from ``mailto://[USER:PASSWORD@]HOST[:PORT]?from=FROM&to=TO[,TO…]``: STARTTLS on 587 by
        default; ``mailtos://`` connects with implicit TLS (465 by default); ``?tls=none`` sends to a
        local relay in the clear (no AUTH then). The whole URL is a secret (it holds the password).

        Raises:
            AlertConfigurationError: another scheme, no host, no ``from`` or ``to``, a port that is
                not a number (the message shows the form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        parsed = parse_channel_url(
            url, cls.url_schemes, provider="SMTP", form=cls.url_form, options=("from", "to", "tls", "reply_to")
        )
        if len(parsed.parts) != 1:
            raise AlertConfigurationError(f"SMTP URL must name the server alone before '?' ({cls.url_form})")
        host, colon, port_text = (
            parsed.parts[0].rpartition(":") if ":" in parsed.parts[0] else (parsed.parts[0], "", "")
        )
        ssl = parsed.scheme == "mailtos"
        port = 465 if ssl else 587
        if colon:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise AlertConfigurationError(f"SMTP URL: the port must be a number from 1 to 65535 ({cls.url_form})")
            port = int(port_text)
        tls = parsed.query.get("tls", "ssl" if ssl else "starttls").lower()
        if tls not in ("starttls", "ssl", "none"):
            raise AlertConfigurationError(f"SMTP URL: tls must be starttls, ssl or none ({cls.url_form})")
        if not parsed.query.get("from") or not parsed.query.get("to"):
            raise AlertConfigurationError(f"SMTP URL needs ?from= and ?to= ({cls.url_form})")
        return cls(
            host=host,
            port=port,
            from_email=parsed.query["from"],
            to_emails=parsed.query["to"],
            username=parsed.user or None,
            password=parsed.password or None,
            use_tls=tls == "starttls",
            use_ssl=tls == "ssl",
            reply_to=parsed.query.get("reply_to") or None,
            name=name,
        )

    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        from_email: str,
        to_emails: Any,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = True,
        use_ssl: bool = False,
        timeout: float = 8.0,
        sender: EmailSender | None = None,
        reply_to: str | None = None,
        allow_insecure_auth: bool = False,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        """
        Args:
            host: the SMTP server's host name (no scheme, no port).
            port: its port: 587 for STARTTLS, 465 for implicit TLS, 25 for relays.
            from_email: the sender, ``alerts@example.com`` or ``Alerts <alerts@example.com>``.
            to_emails: the recipients: a list, or one string of addresses separated by commas.
            username: the AUTH user name (no AUTH when unset).
            password: the AUTH password (masked everywhere).
            use_tls: upgrade the connection with STARTTLS, verifying the certificate.
            use_ssl: connect with implicit TLS (port 465) instead; excludes ``use_tls``.
            timeout: seconds one try may take (connect and read).
            sender: code only: ``sender(recipients, subject, body, html)`` replaces SMTP
                (0.1.x injection point).
            reply_to: the address replies go to (default the sender).
            allow_insecure_auth: send AUTH over a connection without TLS (off: refused).
            name: the channel name.
            format: a formatter name (default, compact, or one a plugin registers).
        """
        super().__init__(name=name or "email.smtp", format=format)
        self.password = password
        self.register_secrets()
        if not host or not isinstance(host, str) or any(c in host for c in "\r\n /"):
            raise AlertConfigurationError("SMTP host is required (a host name, without scheme or path)")
        self.host = host.strip()
        try:
            self.port = int(port)
        except (TypeError, ValueError):
            raise AlertConfigurationError("SMTP port must be a number") from None
        if not 0 < self.port < 65536:
            raise AlertConfigurationError("SMTP port must be between 1 and 65535")
        self.sender_address = parse_address(from_email, field="from_email")
        self.recipients = parse_recipients(to_emails)
        self.reply_to = parse_address(reply_to, field="reply_to") if reply_to else None
        if use_tls and use_ssl:
            raise AlertConfigurationError("SMTP: use_tls (STARTTLS) and use_ssl (implicit TLS) exclude each other")
        self.use_tls = bool(use_tls)
        self.use_ssl = bool(use_ssl)
        self.username = username
        if (username or password) and not (self.use_tls or self.use_ssl) and not allow_insecure_auth:
            raise AlertConfigurationError(
                "SMTP: refusing to send a password without TLS; set use_tls or use_ssl "
                "(or allow_insecure_auth=True for a trusted local relay)"
            )
        if bool(username) != bool(password):
            raise AlertConfigurationError("SMTP: username and password go together")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise AlertConfigurationError("SMTP timeout must be a positive number of seconds")
        self.timeout = float(timeout)
        self.sender = sender

    # 0.1.x attribute names
    @property
    def from_email(self) -> str:
        return self.sender_address.header()

    @property
    def to_emails(self) -> list[str]:
        return [r.addr for r in self.recipients]

    @classmethod
    def from_env(cls, *, prefix: str = "ALERT_SMTP_", **kwargs: Any) -> SMTPEmailTransport:
        """Build from ``<prefix>HOST``, ``PORT``, ``USERNAME``, ``PASSWORD``, ``USE_TLS``, ``USE_SSL``
        and ``ALERT_FROM_EMAIL`` / ``ALERT_TO_EMAILS`` (0.1.x names)."""
        host = os.getenv(f"{prefix}HOST")
        if not host:
            raise AlertConfigurationError(f"{prefix}HOST is required")
        port = os.getenv(f"{prefix}PORT", "587")
        if not port.strip().isdigit():
            raise AlertConfigurationError(f"{prefix}PORT must be a number")
        return cls(
            host=host,
            port=int(port),
            from_email=os.getenv("ALERT_FROM_EMAIL") or os.getenv(f"{prefix}FROM_EMAIL") or "",
            to_emails=split_env_list(os.getenv("ALERT_TO_EMAILS") or os.getenv(f"{prefix}TO_EMAILS")),
            username=os.getenv(f"{prefix}USERNAME") or None,
            password=os.getenv(f"{prefix}PASSWORD") or None,
            use_tls=_bool_env(f"{prefix}USE_TLS", True),
            use_ssl=_bool_env(f"{prefix}USE_SSL", False),
            **kwargs,
        )

    # -- delivery ----------------------------------------------------------------------------
    def send(self, alert: Alert) -> None:
        rendered = self.render(alert)
        if self.sender is not None:
            self._send_injected(alert, rendered)
            return
        message = build_message(
            alert, sender=self.sender_address, recipients=self.recipients, reply_to=self.reply_to, rendered=rendered
        )
        self._deliver(message)

    def _send_injected(self, alert: Alert, rendered: Any) -> None:
        assert self.sender is not None
        try:
            self.sender(
                [r.addr for r in self.recipients],
                format_alert_subject(alert),
                format_alert_body(alert, rendered),
                format_alert_html(alert, rendered),
            )
        except (RetryableAlertTransportError, NonRetryableAlertTransportError):
            raise
        except Exception as exc:  # noqa: BLE001 - classify whatever the injected sender raised
            error = self._classify(exc)
        else:
            return
        raise error from None

    def _connect(self) -> smtplib.SMTP:
        import smtplib
        import ssl

        context = ssl.create_default_context()  # verifies the certificate and the host name
        if self.use_ssl:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            server.ehlo()
            if self.use_tls:
                if not server.has_extn("starttls"):
                    raise NonRetryableAlertTransportError(
                        "SMTP server does not offer STARTTLS; refusing to send in clear text"
                    )
                server.starttls(context=context)
                server.ehlo()
        except BaseException:
            server.close()
            raise
        return server

    def _deliver(self, message: Any) -> None:
        try:
            with self._connect() as server:
                if self.username and self.password:
                    server.login(self.username, self.password)
                refused = server.send_message(message)
        except (RetryableAlertTransportError, NonRetryableAlertTransportError):
            raise
        except Exception as exc:  # noqa: BLE001 - every smtplib/ssl/socket error is classified below
            error = self._classify(exc)
        else:
            if refused:
                details = ", ".join(
                    f"{addr} ({code} {_reply_text(reply)})" for addr, (code, reply) in sorted(refused.items())
                )
                raise NonRetryableAlertTransportError(
                    f"SMTP server refused {len(refused)} of {len(self.recipients)} recipients: {details}; "
                    "the others received the alert"
                )
            return
        raise error from None

    def _classify(self, exc: BaseException) -> RetryableAlertTransportError | NonRetryableAlertTransportError:
        """A secret-free transport error for anything smtplib, ssl or the socket raised."""
        import smtplib
        import ssl

        if isinstance(exc, ssl.SSLCertVerificationError):
            if exc.verify_code in (62, 64):  # valid, but for another host name or address
                return NonRetryableAlertTransportError(
                    "SMTP TLS: the server's certificate is not valid for the configured host"
                )
            # What to do, naming the variables this Python's OpenSSL reads for the default context
            # (SSL_CERT_FILE, SSL_CERT_DIR; REQUESTS_CA_BUNDLE is not read here).
            paths = ssl.get_default_verify_paths()
            return NonRetryableAlertTransportError(
                f"SMTP TLS: the server's certificate is not trusted ({exc.verify_message or 'verification failed'})."
                f" For a private or corporate CA, set {paths.openssl_cafile_env} to a PEM file holding it (or"
                f" {paths.openssl_capath_env} to a hashed folder) and restart"
            )
        if isinstance(exc, ssl.SSLError):
            return RetryableAlertTransportError(f"SMTP TLS error ({type(exc).__name__})")
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return NonRetryableAlertTransportError(f"SMTP authentication failed ({exc.smtp_code})")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return NonRetryableAlertTransportError(f"SMTP server does not support a required extension: {exc}")
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            listed = ", ".join(f"{addr} ({code})" for addr, (code, _) in sorted(exc.recipients.items()))
            message = f"SMTP server refused every recipient: {listed}"
            if codes and all(400 <= code < 500 for code in codes):
                return RetryableAlertTransportError(message)
            return NonRetryableAlertTransportError(message)
        if isinstance(exc, smtplib.SMTPResponseException):
            code = exc.smtp_code
            message = f"SMTP server answered {code} {_reply_text(exc.smtp_error)}".strip()
            if 400 <= code < 500:
                return RetryableAlertTransportError(message)
            return NonRetryableAlertTransportError(message)
        if isinstance(exc, smtplib.SMTPServerDisconnected) and "timed out" in str(exc):
            # smtplib turns a read timeout while waiting for a reply into a disconnect.
            return RetryableAlertTransportError("SMTP server did not answer in time (timeout; it may have delivered)")
        if isinstance(exc, (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)):
            return RetryableAlertTransportError(f"SMTP connection lost ({type(exc).__name__})")
        if isinstance(exc, TimeoutError) or type(exc).__name__ == "timeout":
            return RetryableAlertTransportError("SMTP server did not answer in time (timeout)")
        if isinstance(exc, OSError):
            return RetryableAlertTransportError(f"SMTP connection failed ({type(exc).__name__})")
        return RetryableAlertTransportError(f"SMTP delivery failed ({type(exc).__name__})")
