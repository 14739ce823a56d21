"""Email channels for alert-infra: types ``resend``, ``sendgrid``, ``ses``, ``smtp`` and ``email``.

Installing this distribution registers five entry points in the group
``alert_infra``, all pointing here; alert-infra imports this module only when a
channel of one of these types is used (or plugins are listed). botocore (the
``ses`` extra) is imported only when a ``ses`` channel is built.
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__
from .api import RESEND_API_URL, SENDGRID_API_URL, ResendEmailTransport, SendGridEmailTransport
from .auto import EmailTransport
from .message import (
    build_message,
    format_alert_body,
    format_alert_html,
    format_alert_subject,
    idempotency_key,
    parse_address,
    parse_recipients,
)
from .ses import SESEmailTransport
from .smtp import SMTPEmailTransport

__all__ = [
    "RESEND_API_URL",
    "SENDGRID_API_URL",
    "EmailTransport",
    "ResendEmailTransport",
    "SESEmailTransport",
    "SMTPEmailTransport",
    "SendGridEmailTransport",
    "__version__",
    "build_message",
    "format_alert_body",
    "format_alert_html",
    "format_alert_subject",
    "idempotency_key",
    "parse_address",
    "parse_recipients",
]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(ResendEmailTransport)
    register(SendGridEmailTransport)
    register(SESEmailTransport)
    register(SMTPEmailTransport)
    register(EmailTransport)
