"""Rendering an alert for people: a one-line subject, plain text, Markdown and HTML.

A *formatter* is any callable ``formatter(alert) -> RenderedAlert``. The core
registers ``default`` (everything: message, source, tags, metadata, links,
ids) and ``compact`` (subject, message and links only); plugins add more with
the ``alert_infra_register_formatters`` hook, and a channel picks one by name
(``format = "compact"``). Choosing is always by name, never by install order.

Every user-controlled string is escaped for the form it lands in:
:func:`escape_markdown` (CommonMark backslash escapes) and :func:`escape_html`
(``& < > " '``). The subject is one line: control characters, including
CR/LF and Unicode line separators, become spaces, so it is safe for an email
header or a chat notification. :func:`truncate` shortens visibly, and redacts
before it cuts (a cut must never leave the first characters of a token that the
redactor would have recognised whole): ``truncate(text, limit, redact=False)`` opts
out for text known to be clean. Metadata values are rendered as compact JSON that
never fails (huge integers and non-finite floats included).

Provider-specific markup (Slack mrkdwn, Telegram HTML) belongs to the plugins,
which build on these helpers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from .alert import Alert

from .security import _safe_str, redact_text, redact_value, safe_int

__all__ = [
    "Formatter",
    "RenderedAlert",
    "compact_formatter",
    "default_formatter",
    "escape_html",
    "escape_markdown",
    "metadata_lines",
    "one_line",
    "render",
    "truncate",
]

#: Marker appended by :func:`truncate`.
TRUNCATION_MARKER = "… [truncated]"
SUBJECT_LIMIT = 200

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")
_MD_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_HTML_TABLE = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord('"'): "&quot;", ord("'"): "&#x27;"}
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class RenderedAlert:
    """An alert rendered for people.

    Attributes:
        subject: one line, no control characters, at most 200 characters.
        text: plain text.
        markdown: CommonMark with every alert string escaped.
        html: an HTML fragment with every alert string escaped.
    """

    __slots__ = ("subject", "text", "markdown", "html")

    def __init__(self, subject: str, text: str, markdown: str, html: str) -> None:
        self.subject = subject
        self.text = text
        self.markdown = markdown
        self.html = html

    def __repr__(self) -> str:
        subject = getattr(self, "subject", None)  # safe on a half-built instance
        if not isinstance(subject, str):
            return "RenderedAlert(subject=?)"
        return f"RenderedAlert(subject={truncate(subject, 80)!r})"


Formatter = Callable[["Alert"], RenderedAlert]


def one_line(text: str, limit: int | None = None) -> str:
    """Collapse control characters and whitespace runs to single spaces; optionally truncate."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    return truncate(text, limit) if limit is not None else text


def truncate(text: str, limit: int | None, marker: str = TRUNCATION_MARKER, *, redact: bool = True) -> str:
    """Return ``text`` if it fits in ``limit`` characters, else a prefix ending in ``marker``.

    The result is never longer than ``limit``. If ``limit`` is smaller than the
    marker, the marker itself is cut. Text that has to be cut is redacted first
    (:func:`~alert_infra.security.redact_text`) unless ``redact=False``; text that
    fits is returned as it is.
    """
    if limit is None or len(text) <= limit:
        return text
    if redact:
        text = redact_text(text)
        if len(text) <= limit:
            return text
    if limit <= 0:
        return ""
    if limit <= len(marker):
        return marker[:limit]
    return text[: limit - len(marker)] + marker


def escape_markdown(text: str) -> str:
    """Backslash-escape every ASCII punctuation character (CommonMark renders it literally)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def unescape_markdown(text: str) -> str:
    """Inverse of :func:`escape_markdown` (what a CommonMark renderer shows)."""
    return _MD_UNESCAPE.sub(r"\1", text)


def escape_html(text: str) -> str:
    """Escape ``& < > " '`` for HTML text and attribute values."""
    return text.translate(_HTML_TABLE)


def _clean_text(text: str) -> str:
    """Drop control characters other than tab/newline from multi-line text."""
    return _TEXT_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def subject_line(alert: Alert, limit: int = SUBJECT_LIMIT) -> str:
    """``[CRITICAL] Title (source)``; ``[RESOLVED]``/``[ACKNOWLEDGED]`` replace the severity."""
    label = alert.severity.upper() if alert.status == "firing" else alert.status.upper()
    source = f" ({alert.source})" if alert.source else ""
    return one_line(f"[{label}] {alert.title}{source}", limit)


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, int):
        return str(safe_int(value))  # an int over 4,300 digits cannot be str()-ed on 3.11+
    import json  # a non-scalar value only: rendering a plain alert loads no json

    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=False, default=_safe_str)
    except (TypeError, ValueError, RecursionError):
        # Huge integers, cycles, odd keys: the redacted JSON-safe form never fails.
        return json.dumps(redact_value(value), ensure_ascii=False)


def metadata_lines(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, readable value)`` pairs: strings as they are, other values as compact JSON."""
    return [(_key_text(key), _value_text(value)) for key, value in metadata.items()]


def _key_text(key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return str(safe_int(key))
    return key if type(key) is str else _safe_str(key)


def _details(alert: Alert) -> list[tuple[str, str]]:
    rows = [("Severity", alert.severity)]
    if alert.status != "firing":
        rows.append(("Status", alert.status))
    if alert.source:
        rows.append(("Source", alert.source))
    if alert.tags:
        rows.append(("Tags", ", ".join(alert.tags)))
    return rows


def _ids(alert: Alert) -> list[tuple[str, str]]:
    rows = [("Created", alert.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")), ("Correlation ID", alert.correlation_id)]
    if alert.request_id:
        rows.append(("Request ID", alert.request_id))
    return rows


def _md_url(url: str) -> str:
    return url.replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")


def render(alert: Alert, *, details: bool = True, metadata: bool = True, ids: bool = True) -> RenderedAlert:
    """Render ``alert`` in all four forms; the flags drop sections (used by ``compact``)."""
    subject = subject_line(alert)
    message = _clean_text(alert.message)
    rows = _details(alert) if details else []
    meta = metadata_lines(alert.metadata) if metadata else []
    id_rows = _ids(alert) if ids else []

    # Plain text.
    text = [subject, "", message]
    if rows:
        text.append("")
        text.extend(f"{k}: {one_line(v)}" for k, v in rows)
    if meta:
        text.append("")
        text.append("Metadata:")
        text.extend(f"  {one_line(k)}: {one_line(v)}" for k, v in meta)
    if alert.links:
        text.append("")
        text.append("Links:")
        text.extend(f"  {one_line(label)}: {url}" for label, url in alert.links)
    if id_rows:
        text.append("")
        text.extend(f"{k}: {v}" for k, v in id_rows)

    # Markdown.
    md = [f"**{escape_markdown(subject)}**", "", escape_markdown(message).replace("\n", "  \n")]
    if rows:
        md.append("")
        md.extend(f"- **{k}:** {escape_markdown(one_line(v))}" for k, v in rows)
    if meta:
        md.append("")
        md.append("**Metadata**")
        md.append("")
        md.extend(f"- `{escape_markdown(one_line(k))}`: {escape_markdown(one_line(v))}" for k, v in meta)
    if alert.links:
        md.append("")
        md.extend(f"- [{escape_markdown(one_line(label))}]({_md_url(url)})" for label, url in alert.links)
    if id_rows:
        md.append("")
        md.extend(f"- {k}: {escape_markdown(v)}" for k, v in id_rows)

    # HTML.
    h = [f"<p><strong>{escape_html(subject)}</strong></p>"]
    h.append("<p>" + escape_html(message).replace("\n", "<br>\n") + "</p>")
    if rows:
        h.append("<ul>" + "".join(f"<li><b>{k}:</b> {escape_html(one_line(v))}</li>" for k, v in rows) + "</ul>")
    if meta:
        h.append(
            "<table>"
            + "".join(
                f'<tr><th align="left">{escape_html(one_line(k))}</th><td>{escape_html(one_line(v))}</td></tr>'
                for k, v in meta
            )
            + "</table>"
        )
    if alert.links:
        h.append(
            "<p>"
            + " | ".join(
                f'<a href="{escape_html(url)}">{escape_html(one_line(label))}</a>' for label, url in alert.links
            )
            + "</p>"
        )
    if id_rows:
        h.append("<p><small>" + "<br>".join(f"{k}: {escape_html(v)}" for k, v in id_rows) + "</small></p>")

    return RenderedAlert(subject, "\n".join(text), "\n".join(md), "\n".join(h))


def default_formatter(alert: Alert) -> RenderedAlert:
    """Everything: message, severity, source, tags, metadata, links, time and ids."""
    return render(alert)


def compact_formatter(alert: Alert) -> RenderedAlert:
    """Subject, message and links only (for chat channels where space is scarce)."""
    return render(alert, details=False, metadata=False, ids=False)
