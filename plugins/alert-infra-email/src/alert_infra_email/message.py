"""Building alert emails: addresses, subject, plain text, escaped HTML, the MIME message."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING

from alert_infra import AlertConfigurationError
from alert_infra.formatting import default_formatter, escape_html, subject_line

from ._limits import BODY_LIMIT, SUBJECT_LIMIT, cut_bytes, header_value, scrub

if TYPE_CHECKING:
    from alert_infra import Alert, RenderedAlert

__all__ = [
    "EmailAddress",
    "build_message",
    "format_alert_body",
    "format_alert_html",
    "format_alert_subject",
    "idempotency_key",
    "parse_address",
    "parse_recipients",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class EmailAddress:
    """A validated address: ``name`` (may be empty) and ``addr`` (``local@domain``)."""

    __slots__ = ("name", "addr")

    def __init__(self, name: str, addr: str) -> None:
        self.name = name
        self.addr = addr

    def header(self) -> str:
        """For a header: ``Name <addr>`` or ``addr``."""
        return formataddr((self.name, self.addr)) if self.name else self.addr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmailAddress) and (self.name, self.addr) == (other.name, other.addr)

    def __hash__(self) -> int:
        return hash((self.name, self.addr))

    def __repr__(self) -> str:
        # Safe on a half-built instance (``object.__new__``); an address is not a secret.
        return f"EmailAddress({getattr(self, 'addr', None)!r})"


def parse_address(value: object, *, field: str) -> EmailAddress:
    """Validate ``addr`` or ``Name <addr>``; refuse anything ``parseaddr`` would silently change.

    CR/LF and other control characters are refused outright (they would let a
    configured value inject headers or SMTP commands).
    """
    if not isinstance(value, str) or not value.strip():
        raise AlertConfigurationError(f"{field} is required")
    text = value.strip()
    if _CONTROL.search(text):
        raise AlertConfigurationError(f"{field} contains control characters")
    name, addr = parseaddr(text)
    expected = f"{name} <{addr}>" if name else addr
    plain = text if "<" in text else addr
    if not addr or (("<" in text) and _normal(expected) != _normal(text)) or ("<" not in text and plain != text):
        raise AlertConfigurationError(f"{field} is not a valid email address: {text!r}")
    try:
        Address(addr_spec=addr)
    except (ValueError, IndexError, TypeError):
        raise AlertConfigurationError(f"{field} is not a valid email address: {text!r}") from None
    local, _, domain = addr.rpartition("@")
    if not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        raise AlertConfigurationError(f"{field} is not a valid email address: {text!r}")
    return EmailAddress(name.strip(), addr)


def _normal(value: str) -> str:
    return re.sub(r'\s+|"', "", value)


def parse_recipients(value: object, *, field: str = "to_emails") -> list[EmailAddress]:
    """A list (or comma-separated string) of addresses, each validated; at least one; no duplicates."""
    if isinstance(value, str):
        items: Iterable[object] = [item for item in value.split(",") if item.strip()]
    elif isinstance(value, (Sequence, set, frozenset)):
        items = list(value)
    elif value is None:
        items = []
    else:
        raise AlertConfigurationError(f"{field} must be a list of addresses or a comma-separated string")
    out: list[EmailAddress] = []
    for index, item in enumerate(items):
        address = parse_address(item, field=f"{field}[{index}]")
        if address.addr.lower() not in {a.addr.lower() for a in out}:
            out.append(address)
    if not out:
        raise AlertConfigurationError(f"{field}: at least one recipient is required")
    return out


def format_alert_subject(alert: Alert) -> str:
    """One line, no control characters, at most 200 characters: ``[CRITICAL] Title (source)``."""
    return header_value(subject_line(alert, SUBJECT_LIMIT), SUBJECT_LIMIT)


def format_alert_body(alert: Alert, rendered: RenderedAlert | None = None) -> str:
    """The plain-text body (0.1.x name): message, details, metadata, links and ids; at most 1 MB."""
    return cut_bytes((rendered or default_formatter(alert)).text)


def format_alert_html(alert: Alert, rendered: RenderedAlert | None = None) -> str:
    """A complete HTML document; every string from the alert is escaped; at most 1 MB.

    A rendering over the limit is replaced by the escaped plain text (cut first,
    so that no tag or entity is ever cut) in ``<pre>``.
    """
    rendered = rendered or default_formatter(alert)
    fragment = scrub(rendered.html)
    if len(fragment.encode("utf-8", "surrogatepass")) > BODY_LIMIT - 1000:
        text = cut_bytes(rendered.text, (BODY_LIMIT - 1000) // 6)  # an escape is at most 6 bytes per byte
        fragment = '<pre style="white-space: pre-wrap">' + escape_html(text) + "</pre>"
    title = escape_html(format_alert_subject(alert))
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        + title
        + '</title></head>\n<body style="font-family: sans-serif">\n'
        + fragment
        + "\n</body></html>\n"
    )


def idempotency_key(alert: Alert, channel: str) -> str:
    """Stable for every retry of one alert occurrence on one channel, new for each new occurrence.

    Built from the correlation id, the creation time and the fingerprint (not from
    the fingerprint alone: that would make a provider swallow a genuine repeat of
    the same problem for a day).
    """
    basis = f"{alert.correlation_id}|{alert.created_at.isoformat()}|{alert.fingerprint}"
    digest = hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    safe_channel = re.sub(r"[^A-Za-z0-9_.\-]", "_", channel)[:64]
    return f"alert-infra/{digest}/{safe_channel}"


def build_message(
    alert: Alert,
    *,
    sender: EmailAddress,
    recipients: Sequence[EmailAddress],
    reply_to: EmailAddress | None = None,
    rendered: RenderedAlert | None = None,
) -> EmailMessage:
    """The MIME message: a text/plain part and an escaped text/html alternative.

    Built with ``email.policy.SMTP`` (never the legacy compat32 API); the
    subject is one line, so nothing from the alert can reach another header.
    """
    from email import policy

    message = EmailMessage(policy=policy.SMTP)
    message["Subject"] = format_alert_subject(alert)
    message["From"] = sender.header()
    message["To"] = ", ".join(r.header() for r in recipients)
    if reply_to is not None:
        message["Reply-To"] = reply_to.header()
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.addr.rpartition("@")[2])
    message["X-Alert-Id"] = header_value(alert.correlation_id)
    message["X-Alert-Severity"] = alert.severity
    message.set_content(format_alert_body(alert, rendered))
    message.add_alternative(format_alert_html(alert, rendered), subtype="html")
    return message
