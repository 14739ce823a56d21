"""``TelegramBotTransport``: HTML messages through the Telegram Bot API's ``sendMessage``, edited by
``editMessageText`` when the alert is acknowledged or resolved."""

from __future__ import annotations

import re
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from alert_infra import AlertConfigurationError, Sent
from alert_infra.formatting import metadata_lines, one_line
from alert_infra.http import HttpResponse, HttpTransport, raise_for_status, redact_and_truncate, status_label

if TYPE_CHECKING:
    from alert_infra import Alert

from ._limits import TEXT_LIMIT, escape_attribute, escape_html, fit, units

__all__ = ["TelegramBotTransport", "escape_html", "unescape_html", "visible_length"]

# Visible UTF-16 units each part of the message may take (see _limits.py for how they are counted).
TITLE_LIMIT = 256
SOURCE_LIMIT = 128
KEY_LIMIT = 40
VALUE_LIMIT = 120
LINK_LABEL_LIMIT = 64
TAGS_LIMIT = 200
ID_LIMIT = 64
#: Metadata lines shown at most (each is one bold entity; Telegram honours 100 per message).
METADATA_LINES = 15
#: Links shown at most; a link whose URL is longer than LINK_URL_LIMIT characters is left out.
LINKS = 5
LINK_URL_LIMIT = 2048
#: Visible units for everything after the message body (metadata, links, tags, id), so the
#: body always keeps at least TEXT_LIMIT - TAIL_LIMIT - (title and source) units.
TAIL_LIMIT = 2048
#: Provider error text kept in an exception (after redaction).
ERROR_TEXT_LIMIT = 200

#: ``editMessageText`` answers (the start of ``description``, lower case) for a message that cannot
#: be edited any more: :meth:`TelegramBotTransport.update` sends the alert as a new message instead.
UNEDITABLE = ("bad request: message to edit not found", "bad request: message can't be edited")
#: The answer to an edit that changes nothing (the message already shows the alert): a success.
NOT_MODIFIED = "bad request: message is not modified"

ICONS = {"info": "ℹ️", "warning": "⚠️", "error": "🔴", "critical": "🚨"}
STATUS_ICONS = {"resolved": "✅", "acknowledged": "👀"}

_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$")
_CHAT = re.compile(r"^(?:-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,64})$")
_UNMENTION = re.compile(r"@\u2060(?=\u2060*[A-Za-z0-9_])")
_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&(amp|lt|gt|quot|#x27);")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "#x27": "'"}


def unescape_html(text: str) -> str:
    """What Telegram shows for :func:`escape_html` output, tags removed (the inverse, for tests)."""
    text = _ENTITY.sub(lambda m: _ENTITIES[m.group(1)], _TAG.sub("", text))
    return _UNMENTION.sub("@", text)


def visible_length(html_text: str) -> int:
    """Length Telegram counts for an HTML message: tags removed, entities as one character (UTF-16 units)."""
    return units(_ENTITY.sub("x", _TAG.sub("", html_text)))


class TelegramBotTransport(HttpTransport):
    """Send alerts to a Telegram chat through a bot.

    ``sendMessage`` answers with the message: its chat and id are the handle
    (``Sent(handle={"chat_id": …, "message_id": …})``), and :meth:`update` edits that message
    (``editMessageText``) when the alert is acknowledged or resolved.

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
    provider = "Telegram"
    secret_fields = ("bot_token",)
    #: ``alert-infra send --to tgram://BOT_TOKEN/CHAT_ID``: see :meth:`from_url`.
    url_schemes: ClassVar[tuple[str, ...]] = ("tgram", "telegram")
    url_form: ClassVar[str] = "tgram://123456:BOT_SECRET/CHAT_ID[?api_url=https://api.telegram.org]"
    env_vars: ClassVar[dict[str, str]] = {"bot_token": "ALERT_TELEGRAM_BOT_TOKEN", "chat_id": "ALERT_TELEGRAM_CHAT_ID"}

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
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        self.bot_token = self.secret_option("bot_token", bot_token)
        if not _TOKEN.match(self.bot_token):
            raise AlertConfigurationError("Telegram bot_token is malformed (expected <bot id>:<secret>)")
        if chat_id is None or (isinstance(chat_id, str) and not chat_id.strip()) or isinstance(chat_id, bool):
            raise AlertConfigurationError("Telegram chat_id is required")
        self.chat_id = str(chat_id).strip()
        if not _CHAT.match(self.chat_id):
            raise AlertConfigurationError("Telegram chat_id must be a numeric id or @channelusername")
        self.api_base_url = self.url_option("api_base_url", api_base_url).rstrip("/")
        self.disable_notification = disable_notification

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> TelegramBotTransport:
        """Build from ``tgram://BOT_TOKEN/CHAT_ID`` (apprise's form; a ``@channelusername`` chat too;
        ``?api_url=`` replaces the Bot API base, for a local Bot API server or a test). The whole URL
        is a secret.

        Raises:
            AlertConfigurationError: another scheme, not a token and a chat, an unknown parameter
                (the message shows the form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        parsed = parse_channel_url(url, cls.url_schemes, provider="Telegram", form=cls.url_form, options=("api_url",))
        if len(parsed.parts) != 2:
            raise AlertConfigurationError(f"Telegram URL must be a bot token and a chat id ({cls.url_form})")
        options: dict[str, Any] = {"name": name}
        if "api_url" in parsed.query:
            options["api_base_url"] = parsed.query["api_url"]
        return cls(parsed.parts[0], parsed.parts[1], **options)

    @classmethod
    def from_env(
        cls,
        *,
        token_env: str = "ALERT_TELEGRAM_BOT_TOKEN",  # noqa: S107 - a variable name, not a secret
        chat_env: str = "ALERT_TELEGRAM_CHAT_ID",
        **kwargs: Any,
    ) -> TelegramBotTransport:
        """Build from environment variables (0.1.x names)."""
        return super().from_env(env={"bot_token": token_env, "chat_id": chat_env}, **kwargs)  # type: ignore[no-any-return]

    @property
    def url(self) -> str:
        """The ``sendMessage`` endpoint (it contains the token: never log it)."""
        return self.method_url("sendMessage")

    def method_url(self, method: str) -> str:
        """The URL of a Bot API method (it contains the token: never log it)."""
        return f"{self.api_base_url}/bot{self.bot_token}/{method}"

    # -- message -------------------------------------------------------------------------------
    def render_html(self, alert: Alert) -> str:
        """The HTML message text: at most 4,096 visible UTF-16 units (Telegram's count) for any alert.

        The head (severity, title, source) is fitted first, then the tail (metadata,
        links, tags, id) within ``TAIL_LIMIT``; the message body gets what is left and
        is truncated visibly. Every piece is measured as Telegram counts it, escapes
        and mention-disarming joiners included (see ``_limits.py``).
        """
        label = status_label(alert)
        icon = STATUS_ICONS.get(alert.status) or ICONS.get(alert.severity, "")
        title, used = fit(one_line(alert.title), TITLE_LIMIT)
        head = f"{icon} <b>{label}</b>: <b>{title}</b>"
        used += units(f"{icon} {label}: ")
        if alert.source:
            source, size = fit(one_line(alert.source), SOURCE_LIMIT)
            head += f"\n<i>{source}</i>"
            used += 1 + size
        tail, tail_units = self._tail(alert)
        body_text = alert.message if self.format == self.default_formatter else self.render(alert).text
        body, _ = fit(body_text, TEXT_LIMIT - used - 2 - (2 + tail_units if tail else 0))
        return head + "\n\n" + body + ("\n\n" + tail if tail else "")

    def _tail(self, alert: Alert) -> tuple[str, int]:
        """Metadata lines, links, tags and the id: ``(html, visible units)``, within ``TAIL_LIMIT``."""
        full = self.format == self.default_formatter
        kept: list[tuple[str, int]] = []  # links, tags and id are always shown (each within its limit)
        links: list[str] = []
        size = 0
        for label_, url in alert.links:
            if len(links) == LINKS:
                break
            if len(url) <= LINK_URL_LIMIT:
                text, text_units = fit(one_line(label_) or "link", LINK_LABEL_LIMIT)
                links.append(f'<a href="{escape_attribute(url)}">{text}</a>')
                size += text_units
        if links:
            kept.append((" | ".join(links), size + 3 * (len(links) - 1)))
        if full and alert.tags:
            kept.append(fit("tags: " + ", ".join(alert.tags), TAGS_LIMIT))
        if full:
            ident, size = fit(alert.correlation_id, ID_LIMIT)
            kept.append((f"<code>{ident}</code>", size))
        lines: list[tuple[str, int]] = []
        if full and alert.metadata:
            room = TAIL_LIMIT - sum(size + 1 for _, size in kept) - 48  # 48: the "N more" note
            shown = metadata_lines(dict(islice(alert.metadata.items(), METADATA_LINES)))
            for key, value in shown:
                key_html, key_units = fit(one_line(key), KEY_LIMIT)
                value_html, value_units = fit(one_line(value), VALUE_LIMIT)
                size = key_units + 2 + value_units
                if size + 1 > room:
                    break
                lines.append((f"<b>{key_html}</b>: {value_html}", size))
                room -= size + 1
            hidden = len(alert.metadata) - len(lines)
            if hidden:
                note = f"{hidden} more metadata fields not shown"
                lines.append((f"<i>{note}</i>", units(note)))
        parts = lines + kept
        return "\n".join(html for html, _ in parts), sum(size for _, size in parts) + max(0, len(parts) - 1)

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
    def endpoint(self, alert: Alert) -> str:
        return self.url

    def check_response(self, response: HttpResponse) -> Sent | None:
        """The sent message's chat id and message id as the handle; an error raises (see :meth:`_answer`)."""
        return self._sent(self._answer(response), "sent")

    def update(self, alert: Alert, handle: Mapping[str, Any]) -> Sent | None:
        """Edit the message ``handle`` names (``{"chat_id": …, "message_id": …}``, what :meth:`send`
        returned) to show ``alert`` as it is now: ``editMessageText`` with the text, parse mode and
        link preview setting of :meth:`build_payload` (an edit notifies no one).

        Telegram's "message is not modified" (it already shows this) is a success. A message that
        cannot be edited any more ("message to edit not found", "message can't be edited") is sent
        anew and the detail says so: a resolve must reach the chat. So is an alert whose handle names
        no Telegram message (a handle another channel type left under this channel's name).

        Raises:
            RetryableAlertTransportError: flood control (429, after ``parameters.retry_after``), 5xx,
                network failures.
            NonRetryableAlertTransportError: every other error, as for :meth:`send`.
        """
        chat_id = handle.get("chat_id") if isinstance(handle, Mapping) else None
        message_id = handle.get("message_id") if isinstance(handle, Mapping) else None
        if isinstance(chat_id, int) and not isinstance(chat_id, bool):
            chat_id = str(chat_id)
        if isinstance(message_id, str) and message_id.isdigit():
            message_id = int(message_id)
        if (
            not isinstance(chat_id, str)
            or not _CHAT.match(chat_id)
            or not isinstance(message_id, int)
            or isinstance(message_id, bool)
            or message_id <= 0
        ):
            return self._send_anew(alert, "the handle names no Telegram message")
        edit = self.edit_payload(alert, int(chat_id) if chat_id[0] != "@" else chat_id, message_id)
        response = self.call("POST", self.method_url("editMessageText"), edit)
        body = response.json()
        description = body.get("description") if isinstance(body, dict) else None
        if response.status == 400 and isinstance(description, str):
            said = description.strip().lower()
            if said.startswith(NOT_MODIFIED):
                return Sent(
                    f"message {message_id} already shows this", {"chat_id": edit["chat_id"], "message_id": message_id}
                )
            if said.startswith(UNEDITABLE):
                why = next(text for text in UNEDITABLE if said.startswith(text)).split(": ", 1)[1]  # ours, fixed
                return self._send_anew(alert, f"message {message_id} could not be edited ({why})")
        return self._sent(self._answer(response), "edited")

    def edit_payload(self, alert: Alert, chat_id: int | str, message_id: int) -> dict[str, Any]:
        """The JSON body of ``editMessageText``: message ``message_id`` in ``chat_id`` gets the ``text``,
        ``parse_mode`` and ``link_preview_options`` of :meth:`build_payload` (cut to the same 4,096 units)."""
        payload = self.build_payload(alert)
        return {
            "chat_id": chat_id,
            "message_id": message_id,
            **{key: payload[key] for key in ("text", "parse_mode", "link_preview_options")},
        }

    def _send_anew(self, alert: Alert, why: str) -> Sent:
        """:meth:`send` ``alert`` as a new message: ``Sent`` with its handle and ``why`` in the detail."""
        sent = self.send(alert)
        return Sent(f"sent a new message: {why}", sent.handle if isinstance(sent, Sent) else None)

    def _sent(self, result: Any, verb: str) -> Sent | None:
        """``Sent`` with the message's ``{"chat_id", "message_id"}`` (the chat as Telegram answers it: a
        ``@channelusername`` becomes its numeric id), or ``None`` when the answer names no message."""
        if not isinstance(result, dict):
            return None
        message_id = result.get("message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            return None
        chat = result.get("chat")
        chat_id: int | str = self.chat_id
        if isinstance(chat, dict) and isinstance(chat.get("id"), int) and not isinstance(chat.get("id"), bool):
            chat_id = chat["id"]
        elif self.chat_id[0] != "@":
            chat_id = int(self.chat_id)
        return Sent(f"{verb} message {message_id}", {"chat_id": chat_id, "message_id": message_id})

    def _answer(self, response: HttpResponse) -> Any:
        """The ``result`` of a Bot API success, or raise: 429 (``parameters.retry_after``) and 5xx are
        retryable, other errors not; ``description`` (redacted, cut) is in the message, never the token."""
        body = response.json()
        if not isinstance(body, dict):
            if 200 <= response.status < 300:
                raise_for_status(response, provider="Telegram", detail="response is not JSON", retryable=False)
            raise_for_status(response, provider="Telegram")
            return None  # pragma: no cover - raise_for_status raised
        if body.get("ok") is True and 200 <= response.status < 300:
            return body.get("result")
        description = body.get("description")
        # Whole: raise_for_status redacts first, then cuts (a cut first could keep a secret's head).
        detail = description if isinstance(description, str) else None
        parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        migrated = parameters.get("migrate_to_chat_id") if isinstance(parameters, dict) else None
        if isinstance(migrated, int) and not isinstance(migrated, bool):
            detail = redact_and_truncate(detail or "Bad Request", ERROR_TEXT_LIMIT)
            detail += f"; the group became a supergroup with chat_id {migrated}: update chat_id"
            raise_for_status(response, provider="Telegram", detail=detail, retryable=False)
        if 200 <= response.status < 300:  # ok: false with a 2xx status
            raise_for_status(response, provider="Telegram", detail=detail or "ok is false", retryable=False)
        raise_for_status(
            response,
            provider="Telegram",
            detail=redact_and_truncate(detail, ERROR_TEXT_LIMIT) if detail else None,
            retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None,
        )
        return None  # pragma: no cover - raise_for_status raised

    def __repr__(self) -> str:
        # Safe on a half-built instance; the chat id is not a secret, the token is never shown.
        return f"{type(self).__name__}(name={self.name!r}, chat_id={getattr(self, 'chat_id', None)!r})"
