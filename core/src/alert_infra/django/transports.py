"""``DjangoEmailTransport``: alerts as ``EmailMultiAlternatives`` through the project's email backend.

Also a plugin module: it registers the transport type ``django_email``, so a channel of
``ALERT_INFRA["CHANNELS"]`` (or of ``alert-infra.toml`` in a Django process) can use it::

    ALERT_INFRA = {"CHANNELS": {"ops-mail": {"type": "django_email", "from_email": "...", "to_emails": [...]}}}
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import AlertConfigurationError, NonRetryableAlertTransportError, RetryableAlertTransportError
from ..formatting import one_line, truncate
from ..hookspecs import hookimpl
from ..transports import BaseTransport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..alert import Alert

__all__ = ["SUBJECT_LIMIT", "DjangoEmailTransport", "alert_infra_register_transports"]

#: The longest subject sent (characters); longer ones end with "…".
SUBJECT_LIMIT = 250


def _addresses(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, Sequence) or not value:
        raise AlertConfigurationError(f"DjangoEmailTransport: {field}: at least one recipient is required")
    out = []
    for item in value:
        if not isinstance(item, str) or "@" not in item or any(c in item for c in "\r\n"):
            raise AlertConfigurationError(f"DjangoEmailTransport: {field}: every recipient is an email address")
        out.append(item.strip())
    return out


class DjangoEmailTransport(BaseTransport):
    """Send alerts with Django's ``EmailMultiAlternatives`` through the configured email backend.

    Args:
        from_email: the sender address.
        to_emails: recipients (a list, or a comma-separated string).
        timeout: seconds, handed to the backend's connection (the SMTP backend's socket timeout).
        subject_template_name: a Django template for the subject; rendered without
            autoescaping, and every line break collapsed, so the subject is one line.
        body_template_name: a template for the plain-text body (rendered without autoescaping:
            it is text, not HTML).
        html_template_name: a template for the HTML alternative, rendered with autoescaping
            (``{{ alert.message }}`` cannot inject markup).
        template_context: static values merged into every template context.

    The context holds 0.1.x's names: ``alert`` (the :class:`~alert_infra.Alert`),
    ``alert_dict`` (``alert.to_dict()``), ``metadata`` (the redacted metadata) and ``tags``
    (a list), plus ``template_context``. Without templates the core's default formatter
    writes the subject, text and HTML.

    Failures: a backend connection problem or an SMTP 4xx reply is retryable; an SMTP
    authentication failure, a refused sender or recipient, or a missing template is not.
    Error texts carry exception class names and SMTP codes only, never a password.

    Type name ``django_email``; 0.1.x's default channel name ``email.django``.
    """

    name = "django_email"

    def __init__(
        self,
        *,
        from_email: str,
        to_emails: Any,
        timeout: float = 8.0,
        subject_template_name: str | None = None,
        body_template_name: str | None = None,
        html_template_name: str | None = None,
        template_context: Mapping[str, Any] | None = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name=name or "email.django", format=format)
        if not isinstance(from_email, str) or not from_email.strip() or any(c in from_email for c in "\r\n"):
            raise AlertConfigurationError("DjangoEmailTransport: from_email is required (one email address)")
        self.from_email = from_email.strip()
        self.to_emails = _addresses(to_emails, "to_emails")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 3600:
            raise AlertConfigurationError("DjangoEmailTransport: timeout must be a number of seconds in (0, 3600]")
        self.timeout = float(timeout)
        for field, value in (
            ("subject_template_name", subject_template_name),
            ("body_template_name", body_template_name),
            ("html_template_name", html_template_name),
        ):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise AlertConfigurationError(f"DjangoEmailTransport: {field} must be a template name")
        self.subject_template_name = subject_template_name
        self.body_template_name = body_template_name
        self.html_template_name = html_template_name
        if template_context is not None and not isinstance(template_context, Mapping):
            raise AlertConfigurationError("DjangoEmailTransport: template_context must be a dict")
        self.template_context = dict(template_context or {})

    # -- rendering ---------------------------------------------------------------------------
    def template_context_for(self, alert: Alert) -> dict[str, Any]:
        """The context every template gets (0.1.x names win over ``template_context``)."""
        alert_dict = alert.to_dict()
        return {
            **self.template_context,
            "alert": alert,
            "alert_dict": alert_dict,
            "metadata": alert_dict["metadata"],
            "tags": list(alert_dict["tags"]),
        }

    @staticmethod
    def _render(name: str, context: dict[str, Any], *, autoescape: bool) -> str:
        # a template-rendered email only: Django's template engine loads on first use
        from django.template import TemplateDoesNotExist, TemplateSyntaxError  # type: ignore[import-untyped,import-not-found,unused-ignore]
        from django.template.loader import get_template  # type: ignore[import-untyped,import-not-found,unused-ignore]

        try:
            template = get_template(name)
        except (TemplateDoesNotExist, TemplateSyntaxError) as exc:
            raise AlertConfigurationError(f"DjangoEmailTransport: template {name!r}: {type(exc).__name__}") from None
        inner = getattr(template, "template", None)
        if not autoescape and inner is not None and hasattr(inner, "engine"):
            # The Django template engine: plain text is rendered without HTML escaping.
            # a plain-text Django template only
            from django.template import Context  # type: ignore[import-untyped,import-not-found,unused-ignore]

            return str(inner.render(Context(context, autoescape=False)))
        return str(template.render(context))

    def render_email(self, alert: Alert) -> tuple[str, str, str]:
        """``(subject, text body, html body)`` for ``alert``."""
        rendered = self.render(alert)
        context = self.template_context_for(alert)
        if self.subject_template_name:
            subject = self._render(self.subject_template_name, context, autoescape=False)
        else:
            subject = rendered.subject
        subject = truncate(one_line(" ".join(subject.split())), SUBJECT_LIMIT)
        if self.body_template_name:
            body = self._render(self.body_template_name, context, autoescape=False).strip()
        else:
            body = rendered.text
        if self.html_template_name:
            html = self._render(self.html_template_name, context, autoescape=True).strip()
        else:
            html = rendered.html
        return subject, body, html

    # -- delivery ----------------------------------------------------------------------------
    def _connection(self) -> Any:
        # sending only: django.core.mail (and its backend) loads with the first email
        from django.core.mail import get_connection  # type: ignore[import-untyped,import-not-found,unused-ignore]

        try:
            return get_connection(fail_silently=False, timeout=self.timeout)
        except TypeError:  # a custom backend without a timeout argument
            return get_connection(fail_silently=False)

    def send(self, alert: Alert) -> None:
        # sending only: django.core.mail (and its backend) loads with the first email
        from django.core.mail import EmailMultiAlternatives  # type: ignore[import-untyped,import-not-found,unused-ignore]

        subject, body, html = self.render_email(alert)
        connection = self._connection()
        message = EmailMultiAlternatives(subject, body, self.from_email, self.to_emails, connection=connection)
        message.attach_alternative(html, "text/html")
        try:
            message.send(fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - classified below, never echoed
            raise _classify(exc) from None
        finally:
            # A backend that failed while opening (a refused login, say) keeps its socket open.
            try:
                connection.close()
            except Exception:  # noqa: BLE001, S110 - closing never fails a delivery
                pass

    def __repr__(self) -> str:
        return f"DjangoEmailTransport(name={getattr(self, 'name', '?')!r}, to={len(getattr(self, 'to_emails', []))})"


def _classify(exc: BaseException) -> Exception:
    """A delivery error naming the failure's class (and SMTP code), never its text."""
    what = type(exc).__name__
    code = getattr(exc, "smtp_code", None)
    label = f"Django email delivery failed: {what}" + (f" (SMTP {code})" if isinstance(code, int) else "")
    if isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused)):
        return NonRetryableAlertTransportError(label)
    if isinstance(exc, smtplib.SMTPResponseException) and isinstance(code, int) and 500 <= code < 600:
        return NonRetryableAlertTransportError(label)
    if isinstance(exc, (smtplib.SMTPException, OSError, socket.timeout)):
        return RetryableAlertTransportError(label)
    return RetryableAlertTransportError(label)


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    """Register ``django_email`` (loaded through ``[alert_infra] plugins``, which the Django
    settings adapter adds when a channel uses the type)."""
    register(DjangoEmailTransport)
