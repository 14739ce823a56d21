"""``SlackWebhookTransport``: Block Kit messages through a Slack incoming webhook."""

from __future__ import annotations

import re
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from alert_infra import AlertConfigurationError
from alert_infra.formatting import metadata_lines, one_line, subject_line
from alert_infra.http import HttpResponse, HttpTransport, raise_for_status, status_label

from ._limits import (
    BLOCKS_TEXT_LIMIT,
    BUTTON_TEXT_LIMIT,
    BUTTON_URL_LIMIT,
    BUTTONS_PER_ACTIONS,
    CONTEXT_ELEMENTS,
    FALLBACK_TEXT_LIMIT,
    FIELD_LIMIT,
    FIELDS_PER_SECTION,
    HEADER_LIMIT,
    MAX_BLOCKS,
    METADATA_LIMIT,
    SECTION_LIMIT,
    bounded_object,
    fit,
    json_bytes,
    scrub,
    units,
)

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["SlackWebhookTransport", "escape_mrkdwn", "unescape_mrkdwn"]

#: Metadata entries shown as fields at most, and each value's length (UTF-16 units, escaped).
METADATA_FIELDS = 20
METADATA_KEY_LIMIT = 100
METADATA_VALUE_LIMIT = 500
#: ``event_payload`` text fields: message, and every other string (title, source, tags, ids, metadata values).
PAYLOAD_MESSAGE_LIMIT = 1000
PAYLOAD_TEXT_LIMIT = 200

ICONS = {
    "info": ":information_source:",
    "warning": ":warning:",
    "error": ":red_circle:",
    "critical": ":rotating_light:",
}
STATUS_ICONS = {"resolved": ":white_check_mark:", "acknowledged": ":eyes:"}

_MENTION = re.compile(r"@(?=\u2060*(?:channel|here|everyone)\b)", re.IGNORECASE)
_UNMENTION = re.compile(r"@\u2060(?=\u2060*(?:channel|here|everyone)\b)", re.IGNORECASE)

# Body strings Slack documents for webhook errors (PROVIDERS.md §1.3): retryable or not.
RETRYABLE_ERRORS = frozenset({"rollup_error"})


def escape_mrkdwn(text: str) -> str:
    """Make untrusted text inert in Slack mrkdwn.

    ``&``, ``<`` and ``>`` become entities (Slack decodes exactly these three),
    which disarms every ``<!channel>``, ``<@U…>``, ``<#C…>`` and ``<url|label>``
    construct; a bare ``@channel``/``@here``/``@everyone`` gets an invisible
    word joiner after the ``@`` so it cannot notify anyone.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("@\u2060", text)


def unescape_mrkdwn(text: str) -> str:
    """What Slack shows for :func:`escape_mrkdwn` output (the inverse, for tests)."""
    text = _UNMENTION.sub("@", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": fit(one_line(text), limit, escape=False) or "-", "emoji": True}


def _md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or "-", "verbatim": True}


class _Budget:
    """What is left of ``BLOCKS_TEXT_LIMIT`` (all block text together) while blocks are built."""

    def __init__(self) -> None:
        self.left = BLOCKS_TEXT_LIMIT

    def take(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.left -= units(obj["text"])
        return obj


class SlackWebhookTransport(HttpTransport):
    """Send alerts to a Slack channel through an incoming webhook.

    Args:
        webhook_url: the webhook URL (``https://hooks.slack.com/services/…``); it is
            the credential, so it is masked in every log line, error and result.
        timeout: connect and read timeout in seconds.
        http_client: 0.1.x injection point (``post(url, *, json, headers, timeout)``).
        name: the channel name (default ``slack``).
        format: a formatter name; the default Block Kit layout is used unless a
            channel picks another formatter, whose text then becomes the message.

    Raises:
        AlertConfigurationError: the URL is missing or not https.
    """

    name = "slack"
    provider = "Slack"
    secret_fields = ("webhook_url",)
    #: ``alert-infra send --to slack://T…/B…/SECRET``: see :meth:`from_url`.
    url_schemes: ClassVar[tuple[str, ...]] = ("slack",)
    url_form: ClassVar[str] = "slack://T000/B000/XXXX[?api_url=https://hooks.slack.com/services]"
    env_vars: ClassVar[dict[str, str]] = {"webhook_url": "ALERT_SLACK_WEBHOOK_URL"}

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        self.webhook_url = self.secret_option("webhook_url", webhook_url, https=True)

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> SlackWebhookTransport:
        """Build from ``slack://T000/B000/XXXX``: the three parts of an incoming webhook's
        ``https://hooks.slack.com/services/T000/B000/XXXX`` (``?api_url=`` replaces that base, for a
        proxy or a test server). The whole URL is a secret.

        Raises:
            AlertConfigurationError: another scheme, not three parts, an unknown parameter (the
                message shows the form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        parsed = parse_channel_url(url, cls.url_schemes, provider="Slack", form=cls.url_form, options=("api_url",))
        if len(parsed.parts) != 3:
            raise AlertConfigurationError(f"Slack URL must have three parts after slack:// ({cls.url_form})")
        base = parsed.query.get("api_url", "https://hooks.slack.com/services").rstrip("/")
        return cls(f"{base}/{'/'.join(parsed.parts)}", name=name)

    @classmethod
    def from_env(cls, *, env_var: str = "ALERT_SLACK_WEBHOOK_URL", **kwargs: Any) -> SlackWebhookTransport:
        """Build from the environment variable ``env_var`` (0.1.x)."""
        return super().from_env(env={"webhook_url": env_var}, **kwargs)  # type: ignore[no-any-return]

    # -- payload -----------------------------------------------------------------------------
    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The Block Kit message for ``alert``: within Slack's limits for any alert.

        Each text is cut visibly to its block's limit (counted as sent, see
        ``_limits.py``); all block text together stays within ``BLOCKS_TEXT_LIMIT``
        (metadata fields give way first, with a note of how many are not shown);
        at most ``MAX_BLOCKS`` blocks; buttons only for URLs Slack accepts.
        """
        label = status_label(alert)
        icon = STATUS_ICONS.get(alert.status) or ICONS.get(alert.severity, "")
        budget = _Budget()
        full = self.format == self.default_formatter
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": budget.take(_plain(f"{label}: {alert.title}", HEADER_LIMIT))},
        ]
        body = alert.message if full else self.render(alert).text
        blocks.append({"type": "section", "text": budget.take(_md(fit(body, SECTION_LIMIT)))})
        buttons = [
            {"type": "button", "text": budget.take(_plain(label_, BUTTON_TEXT_LIMIT)), "url": scrub(url)}
            for label_, url in [link for link in alert.links if len(link[1]) <= BUTTON_URL_LIMIT][:BUTTONS_PER_ACTIONS]
        ]
        if full:
            blocks.extend(self._detail_blocks(alert, icon, budget))
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        return {
            "text": fit(f"{icon} {subject_line(alert)}".strip(), FALLBACK_TEXT_LIMIT),
            "blocks": blocks[:MAX_BLOCKS],
            "unfurl_links": False,
            "unfurl_media": False,
            # Slack message metadata (event_type + event_payload): the redacted alert, for Slack apps.
            "metadata": {"event_type": "alert_infra_alert", "event_payload": self._event_payload(alert)},
        }

    @staticmethod
    def _detail_blocks(alert: Alert, icon: str, budget: _Budget) -> list[dict[str, Any]]:
        """Severity/status/source fields, metadata fields (while the budget lasts), the context line."""
        fields = [_md(f"*Severity*\n{icon} {alert.severity}")]
        if alert.status != "firing":
            fields.append(_md(f"*Status*\n{alert.status}"))
        if alert.source:
            fields.append(_md(f"*Source*\n{fit(one_line(alert.source), FIELD_LIMIT - 12)}"))
        blocks: list[dict[str, Any]] = [{"type": "section", "fields": [budget.take(f) for f in fields]}]
        context = []
        if alert.tags:
            context.append(_md(fit("tags: " + ", ".join(alert.tags), 500)))
        context.append(_md(fit(f"id {alert.correlation_id}", 200)))
        if alert.request_id:
            context.append(_md(fit(f"request {alert.request_id}", 200)))
        context.append(_md(alert.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")))
        for element in context:
            budget.take(element)
        budget.left -= 50  # room for the "N more metadata fields" note
        shown = []
        for key, value in metadata_lines(dict(islice(alert.metadata.items(), METADATA_FIELDS))):
            field = _md(f"*{fit(one_line(key), METADATA_KEY_LIMIT)}*\n{fit(one_line(value), METADATA_VALUE_LIMIT)}")
            if units(field["text"]) > budget.left:
                break
            shown.append(budget.take(field))
        for start in range(0, len(shown), FIELDS_PER_SECTION):
            blocks.append({"type": "section", "fields": shown[start : start + FIELDS_PER_SECTION]})
        if len(alert.metadata) > len(shown):
            context.insert(0, _md(f"{len(alert.metadata) - len(shown)} more metadata fields not shown"))
        blocks.append({"type": "context", "elements": context[:CONTEXT_ELEMENTS]})
        return blocks

    @staticmethod
    def _event_payload(alert: Alert) -> dict[str, Any]:
        """A flat, bounded copy of the alert: ``metadata`` stays within ``METADATA_LIMIT`` bytes."""

        def text(value: str, limit: int = PAYLOAD_TEXT_LIMIT) -> str:
            return fit(value, limit, escape=False)

        entries: list[tuple[str, Any]] = [
            ("title", text(alert.title)),
            ("severity", alert.severity),
            ("status", alert.status),
            ("correlation_id", text(alert.correlation_id)),
            ("fingerprint", text(alert.fingerprint)),
            ("created_at", alert.created_at.isoformat()),
        ]
        if alert.source:
            entries.append(("source", text(alert.source)))
        if alert.request_id:
            entries.append(("request_id", text(alert.request_id)))
        if alert.tags:
            entries.append(("tags", text(", ".join(alert.tags), 500)))
        entries.append(("message", text(alert.message, PAYLOAD_MESSAGE_LIMIT)))
        envelope = json_bytes({"event_type": "alert_infra_alert", "event_payload": {}})
        # Room for the "metadata_not_shown" count is kept back before the fields above take
        # theirs: escaped as sent, a non-ASCII character is 6 or 12 bytes, and fields that filled
        # the budget left the count to push the whole past METADATA_LIMIT.
        count = json_bytes("metadata_not_shown") + len(str(len(alert.metadata))) + 4 if alert.metadata else 0
        payload, used = bounded_object(entries, METADATA_LIMIT - envelope - count)
        if alert.metadata:
            room = METADATA_LIMIT - envelope - count - used - json_bytes("metadata") - 2
            lines = metadata_lines(dict(islice(alert.metadata.items(), 200)))
            metadata, _ = bounded_object(((text(key, 100), text(value)) for key, value in lines), room)
            if metadata:
                payload["metadata"] = metadata
            if len(metadata) < len(alert.metadata):
                payload["metadata_not_shown"] = len(alert.metadata) - len(metadata)
        return payload

    # -- delivery ------------------------------------------------------------------------------
    def endpoint(self, alert: Alert) -> str:
        return self.webhook_url

    def check_response(self, response: HttpResponse) -> None:
        body = response.text.strip()
        if 200 <= response.status < 300:
            if body in ("ok", ""):
                return
            # A proxy or captive portal answering 200 with a page: nothing reached Slack.
            raise_for_status(response, provider="Slack", detail="unexpected response body", retryable=False)
        code = body if re.fullmatch(r"[a-z_]{2,64}", body) else None
        retryable = True if code in RETRYABLE_ERRORS else None
        raise_for_status(response, provider="Slack", detail=code, retryable=retryable)
