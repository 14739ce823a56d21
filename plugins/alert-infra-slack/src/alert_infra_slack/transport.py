"""``SlackWebhookTransport``: Block Kit messages through a Slack incoming webhook, or through the Web
API's ``chat.postMessage`` with a bot token (then edited by ``chat.update`` on resolve)."""

from __future__ import annotations

import re
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from alert_infra import AlertConfigurationError, Sent
from alert_infra.formatting import metadata_lines, one_line, subject_line
from alert_infra.http import HttpResponse, HttpTransport, raise_for_status, status_label
from alert_infra.security import register_secret

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

#: The Web API base of the bot-token form (``api_url`` replaces it: a proxy, a test server).
SLACK_API = "https://slack.com/api"
#: Web API ``error`` codes that are worth another try: Slack's own trouble or its rate limit
#: (PROVIDERS.md §1.4). Every other code (``invalid_auth``, ``channel_not_found``, ``not_in_channel``,
#: ``is_archived``, ``msg_too_long``, ``no_text``, ``missing_scope``...) needs a change of
#: configuration or message first, and so does a code Slack adds later: it is not retried.
RETRYABLE_API_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",  # the workspace is moving into an Enterprise org: "intermittently unavailable"
        "update_failed",  # chat.update: "internal update failure"
    }
)
#: ``chat.update`` codes for a message that cannot be edited any more: :meth:`~SlackWebhookTransport.update`
#: posts the alert as a new message instead (a resolve must reach the channel).
UNEDITABLE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
#: What to do about a Web API error code (shown after it).
API_HINTS = {
    "invalid_auth": "bot_token is not valid: configure the app's Bot User OAuth Token (xoxb-…)",
    "not_authed": "no token reached Slack: is a proxy dropping the Authorization header?",
    "token_revoked": "bot_token was revoked: reinstall the app and configure its new token",
    "token_expired": "bot_token expired: configure a fresh token (or turn token rotation off)",
    "account_inactive": "the app's bot user or its workspace was deactivated",
    "missing_scope": "the app lacks the chat:write scope: add it under OAuth & Permissions and reinstall",
    "channel_not_found": "no channel the token can see has that id or name: check channel (a private"
    " channel needs the app invited)",
    "not_in_channel": "the app is not a member of the channel: invite it (/invite @your-app)",
    "is_archived": "the channel is archived",
    "restricted_action": "a workspace setting forbids this app to post in the channel",
    "msg_too_long": "the message is too long",
    "msg_blocks_too_long": "the message's blocks are too long",
    "no_text": "the message has no text",
    "message_not_found": "the message was deleted",
    "cant_update_message": "the message was posted by another app or user",
    "edit_window_closed": "the workspace allows no more edits of the message",
}

#: ``xoxb-…`` (a bot token: what the docs ask for) or ``xoxp-…`` (a user token: it posts as the
#: user), optionally rotated (``xoxe.xoxb-…``). Refresh (``xoxe-``) and app-level (``xapp-``)
#: tokens cannot post.
_BOT_TOKEN = re.compile(r"^(?:xoxe\.)?xox[bp]-[A-Za-z0-9-]{8,250}$")
#: A channel as configured: an id (C…, G…, D…; U…/W… post to the app's DM with that user) or ``#name``.
_CHANNEL = re.compile(r"^(?:[CGDUW][A-Z0-9]{2,30}|#[^\sA-Z#,<>@&|]{1,80})$")
#: What a "did you mean '#name'?" suggests: a plain channel name.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
#: A channel id as Slack answers it (``chat.postMessage`` resolves a ``#name`` or user to it).
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,30}$")
_TS = re.compile(r"^[0-9]{1,12}\.[0-9]{1,8}$")
_CODE = re.compile(r"^[a-z0-9_]{2,64}$")
_SCOPES = re.compile(r"^[a-z:._,]{1,200}$")


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


def _given(value: object) -> bool:
    """An option set to something (``None`` and ``""`` are "not given": an unset ``${VAR}`` is ``""``)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


class _Budget:
    """What is left of ``BLOCKS_TEXT_LIMIT`` (all block text together) while blocks are built."""

    def __init__(self) -> None:
        self.left = BLOCKS_TEXT_LIMIT

    def take(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.left -= units(obj["text"])
        return obj


class SlackWebhookTransport(HttpTransport):
    """Send alerts to a Slack channel through an incoming webhook, or with a bot token.

    Two forms, exactly one per channel:

    * ``webhook_url``: an incoming webhook posts to the channel it was made for. It cannot edit
      what it posted, so a resolve (or acknowledge) is posted as a new message.
    * ``bot_token`` and ``channel``: ``chat.postMessage`` with the app's token (scope
      ``chat:write``; the app must be in the channel). Slack's answer names the message
      (``channel`` id and ``ts``): that is the handle (``Sent(handle={"channel": …, "ts": …})``),
      and :meth:`update` edits that message through ``chat.update`` when the alert is
      acknowledged or resolved.

    Args:
        webhook_url: the webhook URL (``https://hooks.slack.com/services/…``); it is
            the credential, so it is masked in every log line, error and result.
        bot_token: instead of webhook_url, the app's Bot User OAuth Token (xoxb-…, scope
            chat:write); secret, masked like the webhook URL.
        channel: with bot_token, where to post: a channel id (C0123ABCD) or #name.
        api_url: with bot_token, the Web API base (default https://slack.com/api; a proxy or a
            test server).
        timeout: connect and read timeout in seconds.
        http_client: 0.1.x injection point (``post(url, *, json, headers, timeout)``).
        name: the channel name (default ``slack``).
        format: a formatter name; the default Block Kit layout is used unless a
            channel picks another formatter, whose text then becomes the message.

    Raises:
        AlertConfigurationError: neither form or both, a URL that is not https, a token or a
            channel Slack would refuse (the message names the option, never the secret).
    """

    name = "slack"
    provider = "Slack"
    secret_fields = ("webhook_url", "bot_token")
    #: ``alert-infra send --to slack://T…/B…/SECRET``: see :meth:`from_url`.
    url_schemes: ClassVar[tuple[str, ...]] = ("slack",)
    url_form: ClassVar[str] = "slack://T000/B000/XXXX[?api_url=https://hooks.slack.com/services]"
    env_vars: ClassVar[dict[str, str]] = {"webhook_url": "ALERT_SLACK_WEBHOOK_URL"}

    def __init__(
        self,
        webhook_url: str | None = None,
        *,
        bot_token: str | None = None,
        channel: str | None = None,
        api_url: str = SLACK_API,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        # Both secrets are masked before anything is checked: no error below can show either.
        for secret in (webhook_url, bot_token):
            if isinstance(secret, str) and secret.strip():
                register_secret(secret, owner=self)
                register_secret(secret.strip(), owner=self)
        self.webhook_url: str | None = None
        self.bot_token: str | None = None
        self.channel: str | None = None
        self.api_url = self.url_option("api_url", api_url).rstrip("/")
        if _given(webhook_url) and (_given(bot_token) or _given(channel)):
            raise AlertConfigurationError(
                "Slack takes webhook_url, or bot_token and channel, not both: a webhook posts to its own channel"
                " (and cannot edit); a bot token posts to channel (and edits the message on resolve)"
            )
        if _given(bot_token) or _given(channel):
            self.bot_token = self._check_token(bot_token)
            self.channel = self._check_channel(channel)
            self._authorization = {"Authorization": f"Bearer {self.bot_token}"}
        elif webhook_url is None or webhook_url == "":
            raise AlertConfigurationError(
                "Slack webhook_url is required, or bot_token and channel (a bot token posts with chat.postMessage"
                " and edits the message on resolve)"
            )
        else:
            self.webhook_url = self.secret_option("webhook_url", webhook_url, https=True)

    def _check_token(self, token: object) -> str:
        if not _given(token):
            raise AlertConfigurationError(
                "Slack bot_token is required with channel (the app's Bot User OAuth Token, xoxb-…, scope chat:write);"
                " with webhook_url leave channel out: a webhook posts to its own channel"
            )
        cleaned = self.secret_option("bot_token", token)
        if _BOT_TOKEN.match(cleaned):
            return cleaned
        if cleaned.lower().startswith(("https://", "http://")):
            hint = "; did you mean webhook_url? (a URL is a webhook)"
        elif cleaned.startswith("xapp-"):
            hint = ": that is an app-level token (xapp-…), which cannot post; use the Bot User OAuth Token"
        elif cleaned.startswith("xoxe-"):
            hint = ": that is a refresh token (xoxe-…); use the Bot User OAuth Token it refreshes"
        else:
            hint = ""
        raise AlertConfigurationError(f"Slack bot_token must be a Slack token (xoxb-…){hint}")

    @staticmethod
    def _check_channel(channel: object) -> str:
        if not _given(channel):
            raise AlertConfigurationError("Slack channel is required with bot_token: a channel id (C0123ABCD) or #name")
        if not isinstance(channel, str):
            raise AlertConfigurationError("Slack channel must be a string: a channel id (C0123ABCD) or #name")
        cleaned = channel.strip()
        if _CHANNEL.match(cleaned):
            return cleaned
        # A suggestion only for what looks like a name or an id (never echo what may be a token or URL).
        name = cleaned.lstrip("#@").strip().lower().replace(" ", "-")
        if _CHANNEL.match(cleaned.upper()) and not cleaned.startswith("#"):
            guess: str | None = cleaned.upper()
        elif _NAME.match(name) and not name.startswith(("xox", "xapp")):
            guess = "#" + name
        else:
            guess = None
        hint = f"; did you mean {guess!r}?" if guess else ""
        raise AlertConfigurationError(
            f"Slack channel must be a channel id (C0123ABCD) or #name (lower case, no spaces){hint}"
        )

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
        """The Block Kit message for ``alert``: within Slack's limits for any alert (the same
        message for a webhook, ``chat.postMessage`` and ``chat.update``; the bot form adds ``channel``).

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
            # Slack counts a URL in UTF-16 units, as every limit here
            for label_, url in [link for link in alert.links if units(link[1]) <= BUTTON_URL_LIMIT][
                :BUTTONS_PER_ACTIONS
            ]
        ]
        if full:
            blocks.extend(self._detail_blocks(alert, icon, budget))
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        return {
            **({"channel": self.channel} if self.channel else {}),  # chat.postMessage (bot token) only
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
        if self.webhook_url is not None:
            return self.webhook_url
        return f"{self.api_url}/chat.postMessage"

    def request_headers(self, alert: Alert) -> Mapping[str, str] | None:
        if self.bot_token is None:
            return None
        # Slack warns ("missing_charset") about a JSON body whose Content-Type names no charset.
        return {**self._authorization, "Content-Type": "application/json; charset=utf-8"}

    def check_response(self, response: HttpResponse) -> Sent | None:
        """A webhook: ``ok`` (no handle: a webhook cannot edit). ``chat.postMessage``: the posted
        message's ``channel`` id and ``ts`` as the handle; ``{"ok": false}`` (HTTP 200) raises, see
        :meth:`_answer`."""
        if self.webhook_url is None:
            return self._sent(self._answer(response, "chat.postMessage"), "posted")
        body = response.text.strip()
        if 200 <= response.status < 300:
            if body in ("ok", ""):
                return None
            # A proxy or captive portal answering 200 with a page: nothing reached Slack.
            raise_for_status(response, provider="Slack", detail="unexpected response body", retryable=False)
        code = body if re.fullmatch(r"[a-z_]{2,64}", body) else None
        retryable = True if code in RETRYABLE_ERRORS else None
        raise_for_status(response, provider="Slack", detail=code, retryable=retryable)
        return None  # pragma: no cover - raise_for_status raised

    def update(self, alert: Alert, handle: Mapping[str, Any]) -> Sent | None:
        """Edit the message ``handle`` names (``{"channel": …, "ts": …}``, what :meth:`send` returned)
        to show ``alert`` as it is now (RESOLVED, ACKNOWLEDGED, or firing again): ``chat.update``
        with the same blocks :meth:`build_payload` makes.

        A message that cannot be edited any more (``message_not_found``, ``cant_update_message``,
        ``edit_window_closed``) is posted anew, and the detail says so: a resolve must reach the
        channel. So is an alert whose handle names no Slack message (a webhook channel keeps none;
        a handle another channel type left under this channel's name).

        Raises:
            RetryableAlertTransportError: Slack's rate limit (``Retry-After``), its own errors, 5xx,
                network failures.
            NonRetryableAlertTransportError: every other error (token, channel, message), as for
                :meth:`send`.
        """
        channel = handle.get("channel") if isinstance(handle, Mapping) else None
        ts = handle.get("ts") if isinstance(handle, Mapping) else None
        if self.bot_token is None or not isinstance(channel, str) or not isinstance(ts, str):
            return self._post_anew(alert, "this channel has no Slack message to edit")
        if not _CHANNEL_ID.match(channel) or not _TS.match(ts):
            return self._post_anew(alert, "the handle names no Slack message")
        payload = self.update_payload(alert, channel, ts)
        response = self.call("POST", f"{self.api_url}/chat.update", payload, headers=self.request_headers(alert))
        body = response.json()
        if 200 <= response.status < 300 and isinstance(body, dict) and body.get("ok") is False:
            code = body.get("error")
            if code in UNEDITABLE_ERRORS:
                return self._post_anew(alert, f"message {ts} could not be edited ({code}: {API_HINTS[code]})")
        return self._sent(self._answer(response, "chat.update"), "edited")

    def update_payload(self, alert: Alert, channel: str, ts: str) -> dict[str, Any]:
        """The JSON body of ``chat.update``: message ``ts`` in ``channel`` gets the ``text``, ``blocks``
        and ``metadata`` of :meth:`build_payload` (cut to the same limits as a new message)."""
        message = self.build_payload(alert)
        return {"channel": channel, "ts": ts, **{key: message[key] for key in ("text", "blocks", "metadata")}}

    def _post_anew(self, alert: Alert, why: str) -> Sent:
        """:meth:`send` ``alert`` as a new message: ``Sent`` with its handle and ``why`` in the detail."""
        posted = self.send(alert)
        return Sent(f"posted a new message: {why}", posted.handle if isinstance(posted, Sent) else None)

    @staticmethod
    def _sent(body: dict[str, Any], verb: str) -> Sent:
        channel, ts = body.get("channel"), body.get("ts")
        if isinstance(channel, str) and _CHANNEL_ID.match(channel) and isinstance(ts, str) and _TS.match(ts):
            return Sent(f"{verb} message {ts} in {channel}", {"channel": channel, "ts": ts})
        return Sent(f"{verb}; Slack's answer named no channel and ts, so the message cannot be edited later")

    @staticmethod
    def _answer(response: HttpResponse, method: str) -> dict[str, Any]:
        """The JSON object of a Web API success (``{"ok": true, …}`` with a 2xx status), or raise.

        Slack answers application errors with HTTP 200 and ``{"ok": false, "error": "<code>"}``:
        retryable for its own trouble and its rate limit (:data:`RETRYABLE_API_ERRORS`; HTTP 429
        ``ratelimited`` waits ``Retry-After``), not for anything else; the message names the method,
        the code and what to do (:data:`API_HINTS`), never the token. Not Slack's JSON: a 2xx
        (a proxy's page) is not retryable, other statuses by the usual rules (5xx retryable).
        """
        body = response.json()
        status = response.status
        if isinstance(body, dict) and body.get("ok") is True and 200 <= status < 300:
            return body
        if not isinstance(body, dict):
            # 2xx: a proxy's or captive portal's page, nothing reached Slack; else the status decides.
            retryable = False if 200 <= status < 300 else None
            detail = f"{method}: unexpected response body" if retryable is False else method
            raise_for_status(response, provider="Slack", detail=detail, retryable=retryable)
            raise AssertionError("unreachable")  # pragma: no cover - raise_for_status raised
        error = body.get("error")
        code = error if isinstance(error, str) and _CODE.match(error) else None
        detail = f"{method} {code or 'failed'}"
        if code in API_HINTS:
            detail += f" ({API_HINTS[code]})"
        needed = body.get("needed")
        if code == "missing_scope" and isinstance(needed, str) and _SCOPES.match(needed):
            detail += f"; needed: {needed}"
        metadata = body.get("response_metadata")
        messages = metadata.get("messages") if isinstance(metadata, dict) else None
        if isinstance(messages, list):  # invalid_blocks: "[ERROR] must be less than 3001 characters [json-pointer:…]"
            detail += "".join(f"; {m}" for m in messages[:2] if isinstance(m, str))
        retryable = code in RETRYABLE_API_ERRORS or status == 429 or status >= 500 or status in (408, 425)
        raise_for_status(response, provider="Slack", detail=detail, retryable=retryable)
        raise AssertionError("unreachable")  # pragma: no cover - raise_for_status raised
