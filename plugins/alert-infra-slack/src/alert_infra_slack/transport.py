"""``SlackWebhookTransport``: Block Kit messages through a Slack incoming webhook."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from alert_infra import AlertConfigurationError, BaseTransport
from alert_infra.formatting import metadata_lines, one_line, subject_line, truncate
from alert_infra.http import HttpChannel, HttpResponse, raise_for_status, validate_https_url

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["SlackWebhookTransport", "escape_mrkdwn", "unescape_mrkdwn"]

# Limits from Slack's Block Kit reference (see PROVIDERS.md §1.2); we stay inside them
# for any input, truncating visibly rather than letting Slack reject the message.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FIELDS_PER_SECTION = 10
CONTEXT_ELEMENTS = 10
BUTTON_TEXT_LIMIT = 75
BUTTON_URL_LIMIT = 3000
BUTTONS_PER_ACTIONS = 25
MAX_BLOCKS = 50
FALLBACK_TEXT_LIMIT = 3000
METADATA_FIELDS = 20
METADATA_VALUE_LIMIT = 500

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


def _mrkdwn(text: str, limit: int) -> str:
    """Escape, then truncate visibly without cutting an entity in half."""
    escaped = escape_mrkdwn(text)
    if len(escaped) <= limit:
        return escaped
    marker = "… [truncated]"
    cut = escaped[: limit - len(marker)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + marker


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(one_line(text) or "-", limit), "emoji": True}


def _md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


class SlackWebhookTransport(BaseTransport):
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
    secret_fields = ("webhook_url",)

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name=name, format=format)
        if isinstance(webhook_url, str) and webhook_url:
            # Registered before validation, so no later message can show it.
            self.webhook_url = webhook_url
            self.register_secrets()
        self.webhook_url = validate_https_url(webhook_url, field="Slack webhook_url")
        self.timeout = timeout
        self.http_client = http_client
        self._http = HttpChannel("Slack", timeout=timeout, http_client=http_client)

    @classmethod
    def from_env(cls, *, env_var: str = "ALERT_SLACK_WEBHOOK_URL", **kwargs: Any) -> SlackWebhookTransport:
        """Build from the environment variable ``env_var`` (0.1.x)."""
        value = os.getenv(env_var)
        if not value:
            raise AlertConfigurationError(f"{env_var} is required")
        return cls(value, **kwargs)

    # -- payload -----------------------------------------------------------------------------
    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The Block Kit message for ``alert`` (always within Slack's limits)."""
        label = alert.severity.upper() if alert.status == "firing" else alert.status.upper()
        icon = STATUS_ICONS.get(alert.status) or ICONS.get(alert.severity, "")
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": _plain(f"{label}: {alert.title}", HEADER_LIMIT)},
        ]
        if self.format != self.default_formatter:
            body = self.render(alert).text
        else:
            body = alert.message
        blocks.append({"type": "section", "text": _md(_mrkdwn(body, SECTION_LIMIT))})

        if self.format == self.default_formatter:
            fields = [_md(f"*Severity*\n{icon} {alert.severity}")]
            if alert.status != "firing":
                fields.append(_md(f"*Status*\n{alert.status}"))
            if alert.source:
                fields.append(_md(f"*Source*\n{_mrkdwn(one_line(alert.source), FIELD_LIMIT - 12)}"))
            blocks.append({"type": "section", "fields": fields})

            meta = metadata_lines(alert.metadata)
            shown = meta[:METADATA_FIELDS]
            for start in range(0, len(shown), FIELDS_PER_SECTION):
                chunk = shown[start : start + FIELDS_PER_SECTION]
                blocks.append(
                    {
                        "type": "section",
                        "fields": [
                            _md(f"*{_mrkdwn(one_line(key), 100)}*\n{_mrkdwn(one_line(value), METADATA_VALUE_LIMIT)}")
                            for key, value in chunk
                        ],
                    }
                )
            context = []
            if alert.tags:
                context.append(_md(_mrkdwn("tags: " + ", ".join(alert.tags), 500)))
            if len(meta) > len(shown):
                context.append(_md(f"{len(meta) - len(shown)} more metadata fields not shown"))
            context.append(_md(_mrkdwn(f"id {alert.correlation_id}", 200)))
            if alert.request_id:
                context.append(_md(_mrkdwn(f"request {alert.request_id}", 200)))
            context.append(_md(alert.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")))
            blocks.append({"type": "context", "elements": context[:CONTEXT_ELEMENTS]})

        buttons = [
            {"type": "button", "text": _plain(label_, BUTTON_TEXT_LIMIT), "url": url}
            for label_, url in alert.links
            if len(url) <= BUTTON_URL_LIMIT
        ][:BUTTONS_PER_ACTIONS]
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        return {
            "text": _mrkdwn(f"{icon} {subject_line(alert)}".strip(), FALLBACK_TEXT_LIMIT),
            "blocks": blocks[:MAX_BLOCKS],
            "unfurl_links": False,
            "unfurl_media": False,
            # Slack message metadata (event_type + event_payload): the redacted alert, for Slack apps.
            "metadata": {"event_type": "alert_infra_alert", "event_payload": alert.to_dict()},
        }

    # -- delivery ------------------------------------------------------------------------------
    def send(self, alert: Alert) -> None:
        response = self._http.post_json(self.webhook_url, self.build_payload(alert))
        self._check(response)

    @staticmethod
    def _check(response: HttpResponse) -> None:
        body = response.text.strip()
        if 200 <= response.status < 300:
            if body in ("ok", ""):
                return
            # A proxy or captive portal answering 200 with a page: nothing reached Slack.
            raise_for_status(response, provider="Slack", detail="unexpected response body", retryable=False)
        code = body if re.fullmatch(r"[a-z_]{2,64}", body) else None
        retryable = True if code in RETRYABLE_ERRORS else None
        raise_for_status(response, provider="Slack", detail=code, retryable=retryable)

    def close(self) -> None:
        self._http.close()
