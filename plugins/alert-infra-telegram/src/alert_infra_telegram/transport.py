"""``TelegramBotTransport``: HTML messages through the Telegram Bot API's ``sendMessage``."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from alert_infra import AlertConfigurationError, BaseTransport
from alert_infra.formatting import metadata_lines, one_line
from alert_infra.http import HttpChannel, HttpResponse, raise_for_status, validate_https_url

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["TelegramBotTransport", "escape_html", "unescape_html", "visible_length"]

#: Telegram's limit for message text, counted after entity parsing. The unit is
#: not documented (code points or UTF-16 units); entity offsets are UTF-16 units,
#: so we count those, the stricter of the two.
TEXT_LIMIT = 4096
TRUNCATED = "… [truncated]"
METADATA_LINES = 15
KEY_LIMIT = 40
VALUE_LIMIT = 120
TITLE_LIMIT = 256
LINKS = 5

ICONS = {"info": "ℹ️", "warning": "⚠️", "error": "🔴", "critical": "🚨"}
STATUS_ICONS = {"resolved": "✅", "acknowledged": "👀"}

_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$")
_MENTION = re.compile(r"@(?=\u2060*[A-Za-z0-9_])")
_UNMENTION = re.compile(r"@\u2060(?=\u2060*[A-Za-z0-9_])")
_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&(amp|lt|gt|quot|#x27);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "#x27": "'"}


def escape_html(text: str) -> str:
    """Escape for Telegram's HTML parse mode, and disarm ``@username`` mentions.

    ``& < > " '`` become entities (all understood by Telegram, safe in text and
    in ``href``); an invisible word joiner after ``@`` keeps alert text from
    notifying a user or bot.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace('"', "&quot;").replace("'", "&#x27;")
    return _MENTION.sub("@\u2060", text)


def unescape_html(text: str) -> str:
    """What Telegram shows for :func:`escape_html` output, tags removed (the inverse, for tests)."""
    text = _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], _TAG.sub("", text))
    return _UNMENTION.sub("@", text)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def visible_length(html_text: str) -> int:
    """Length Telegram counts for an HTML message: tags removed, entities as one character (UTF-16 units)."""
    return _units(_ENTITY.sub("x", _TAG.sub("", html_text)))


def _cut(text: str, units: int) -> str:
    """The longest prefix of ``text`` within ``units`` UTF-16 units (never half a surrogate pair)."""
    if _units(text) <= units:
        return text
    out = []
    used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > units:
            break
        out.append(char)
        used += size
    return "".join(out)


def _shorten(text: str, units: int) -> str:
    if _units(text) <= units:
        return text
    return _cut(text, max(0, units - _units(TRUNCATED))) + TRUNCATED


class TelegramBotTransport(BaseTransport):
    """Send alerts to a Telegram chat through a bot.

    Long alerts are **truncated visibly** to one message rather than split: a
    burst of fragments is harder to read in an incident, can be interleaved with
    other alerts, and may half-fail. The message body gives way first; title,
    severity and links are kept.

    Args:
        bot_token: ``<bot id>:<secret>``; it lives in the request URL, so it is
            masked in every log line, error and result.
        chat_id: a numeric chat id or ``@channelusername``.
        timeout: connect and read timeout in seconds.
        api_base_url: the Bot API base (https only).
        http_client: 0.1.x injection point.
        disable_notification: send silently; by default ``info`` alerts are silent.
        name: the channel name (default ``telegram``).
        format: a formatter name; by default the transport's own HTML layout.
    """

    name = "telegram"
    secret_fields = ("bot_token",)

    def __init__(
        self,
        bot_token: str,
        chat_id: str | int,
        *,
        timeout: float = 5.0,
        api_base_url: str = "https://api.telegram.org",
        http_client: Any = None,
        disable_notification: bool | None = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name=name, format=format)
        if not bot_token or not isinstance(bot_token, str):
            raise AlertConfigurationError("Telegram bot_token is required")
        self.bot_token = bot_token.strip()
        self.register_secrets()
        if not _TOKEN.match(self.bot_token):
            raise AlertConfigurationError("Telegram bot_token is malformed (expected <bot id>:<secret>)")
        if chat_id is None or (isinstance(chat_id, str) and not chat_id.strip()) or isinstance(chat_id, bool):
            raise AlertConfigurationError("Telegram chat_id is required")
        self.chat_id = str(chat_id).strip()
        if not re.fullmatch(r"-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,64}", self.chat_id):
            raise AlertConfigurationError("Telegram chat_id must be a numeric id or @channelusername")
        self.api_base_url = validate_https_url(api_base_url, field="Telegram api_base_url").rstrip("/")
        self.timeout = timeout
        self.http_client = http_client
        self.disable_notification = disable_notification
        self._http = HttpChannel("Telegram", timeout=timeout, http_client=http_client)

    @classmethod
    def from_env(
        cls,
        *,
        token_env: str = "ALERT_TELEGRAM_BOT_TOKEN",  # noqa: S107 - a variable name, not a secret
        chat_env: str = "ALERT_TELEGRAM_CHAT_ID",
        **kwargs: Any,
    ) -> TelegramBotTransport:
        """Build from environment variables (0.1.x names)."""
        token = os.getenv(token_env)
        chat_id = os.getenv(chat_env)
        if not token:
            raise AlertConfigurationError(f"{token_env} is required")
        if not chat_id:
            raise AlertConfigurationError(f"{chat_env} is required")
        return cls(token, chat_id, **kwargs)

    @property
    def url(self) -> str:
        """The ``sendMessage`` endpoint (it contains the token: never log it)."""
        return f"{self.api_base_url}/bot{self.bot_token}/sendMessage"

    # -- message -------------------------------------------------------------------------------
    def render_html(self, alert: Alert) -> str:
        """The HTML message text, at most 4,096 visible UTF-16 units for any input."""
        label = alert.severity.upper() if alert.status == "firing" else alert.status.upper()
        icon = STATUS_ICONS.get(alert.status) or ICONS.get(alert.severity, "")
        head = f"{icon} <b>{label}</b>: <b>{escape_html(_shorten(one_line(alert.title), TITLE_LIMIT))}</b>"
        if alert.source:
            head += f"\n<i>{escape_html(_shorten(one_line(alert.source), 128))}</i>"
        tail: list[str] = []
        if self.format == self.default_formatter:
            meta = metadata_lines(alert.metadata)
            for key, value in meta[:METADATA_LINES]:
                tail.append(
                    f"<b>{escape_html(_shorten(one_line(key), KEY_LIMIT))}</b>: "
                    f"{escape_html(_shorten(one_line(value), VALUE_LIMIT))}"
                )
            if len(meta) > METADATA_LINES:
                tail.append(f"<i>{len(meta) - METADATA_LINES} more metadata fields not shown</i>")
        links = [
            f'<a href="{escape_html(url)}">{escape_html(_shorten(one_line(label_), 64))}</a>'
            for label_, url in alert.links[:LINKS]
        ]
        if links:
            tail.append(" | ".join(links))
        if alert.tags and self.format == self.default_formatter:
            tail.append(escape_html(_shorten("tags: " + ", ".join(alert.tags), 200)))
        if self.format == self.default_formatter:
            tail.append(f"<code>{escape_html(alert.correlation_id[:64])}</code>")
        body = alert.message if self.format == self.default_formatter else self.render(alert).text
        fixed = head + "\n\n" + "\n\n" + "\n".join(tail)
        budget = TEXT_LIMIT - visible_length(fixed)
        message = ""
        units = budget
        while units > 0:
            # Entities count as one character, but the joiners escape_html puts after "@" are
            # visible units too: shorten until the escaped text fits.
            message = escape_html(_shorten(body, units))
            excess = visible_length(message) - budget
            if excess <= 0:
                break
            units -= excess
            message = ""
        return head + "\n\n" + message + ("\n\n" + "\n".join(tail) if tail else "")

    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON body of ``sendMessage`` (0.1.x name)."""
        silent = self.disable_notification if self.disable_notification is not None else alert.severity == "info"
        return {
            "chat_id": self.chat_id,
            "text": self.render_html(alert),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            "disable_notification": silent,
        }

    # -- delivery ------------------------------------------------------------------------------
    def send(self, alert: Alert) -> None:
        response = self._http.post_json(self.url, self.build_payload(alert))
        self._check(response)

    @staticmethod
    def _check(response: HttpResponse) -> None:
        body = response.json()
        if not isinstance(body, dict):
            if 200 <= response.status < 300:
                raise_for_status(response, provider="Telegram", detail="response is not JSON", retryable=False)
            raise_for_status(response, provider="Telegram")
            return
        if body.get("ok") is True and 200 <= response.status < 300:
            return
        description = body.get("description")
        detail = str(description)[:200] if isinstance(description, str) else None
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if isinstance(parameters, dict) and parameters.get("migrate_to_chat_id") is not None:
            detail = (
                f"{detail or 'Bad Request'}; the group became a supergroup with chat_id "
                f"{parameters['migrate_to_chat_id']}: update chat_id"
            )
            raise_for_status(response, provider="Telegram", detail=detail, retryable=False)
        if 200 <= response.status < 300:  # ok: false with a 2xx status
            raise_for_status(response, provider="Telegram", detail=detail or "ok is false", retryable=False)
        raise_for_status(
            response,
            provider="Telegram",
            detail=detail,
            retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None,
        )

    def close(self) -> None:
        self._http.close()
