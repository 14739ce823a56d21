"""``DiscordTransport``: an embed through a Discord webhook (execute, then edit on resolve)."""

from __future__ import annotations

import math
import re
from datetime import timezone
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from alert_infra import AlertConfigurationError, NonRetryableAlertTransportError, Sent
from alert_infra.formatting import metadata_lines, subject_line
from alert_infra.http import HttpResponse, HttpTransport, parse_retry_after, raise_for_status, status_label
from alert_infra.security import register_secret

from ._limits import (
    AUTHOR_LIMIT,
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    MAX_FIELDS,
    TITLE_LIMIT,
    URL_LIMIT,
    USERNAME_LIMIT,
    fit,
    one_line,
    plain,
    units,
)

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["COLOURS", "DISCORD_API", "DiscordTransport"]

#: Where ``discord://<webhook_id>/<webhook_token>`` points.
DISCORD_API = "https://discord.com/api/webhooks"

#: Embed colour (a 24-bit RGB integer) by severity, and by status once handled.
COLOURS = {"critical": 0x992D22, "error": 0xED4245, "warning": 0xE67E22, "info": 0x5865F2}
STATUS_COLOURS = {"resolved": 0x57F287, "acknowledged": 0x95A5A6}
ICONS = {"critical": "\U0001f6a8", "error": "\U0001f534", "warning": "\u26a0\ufe0f", "info": "\u2139\ufe0f"}
STATUS_ICONS = {"resolved": "\u2705", "acknowledged": "\U0001f440"}

#: Budgets (UTF-16 units as sent) of the parts that come before the message, so the message
#: always keeps at least 6,000 - 256 - 256 - 512 - (fixed fields ~1,600) - METADATA_RESERVE.
FOOTER_BUDGET = 512
TAGS_BUDGET = 512
LINKS_BUDGET = 1000
LINK_LABEL_LIMIT = 100
#: Held back from the message for metadata fields when the alert has metadata.
METADATA_RESERVE = 1200
#: Kept for the "N more metadata fields not shown" field.
NOTE_ROOM = 60
#: A metadata value is shown only with at least this much room (else the note says it is not shown).
MIN_VALUE_ROOM = 40
#: Inline (three to a row) when a metadata value is this short and one line.
INLINE_VALUE = 40
#: The ``content`` line above the embed (what push notifications show).
CONTENT_BUDGET = 300

_ID = re.compile(r"^[0-9]{1,25}$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?$")
#: What Discord trims from a field (it refuses a field that is empty once trimmed).
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BLANK = re.compile(r"^[\s\u200b-\u200d\u2060\ufeff]*$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")
#: A URL's characters that stay as they are in an embed or masked link; the rest is %-encoded
#: (parentheses too: a ``)`` would end a masked link).
_URL_SAFE = ":/?#[]@!$&'*+,;=%-._~"
#: Discord refuses these in a webhook's name (its "Usernames" rules; webhook names also refuse "clyde").
_USERNAME_FORBIDDEN = ("@", "#", ":", "```", "discord", "clyde")

#: Discord's JSON error code for a message that does not exist (deleted): :meth:`DiscordTransport.update`
#: posts the alert anew on it.
UNKNOWN_MESSAGE = 10008
#: Discord's JSON error codes, with what the user should do.
ERROR_HINTS = {
    10003: "the thread_id in webhook_url names no thread of this channel",
    10008: "the message was deleted: there is nothing to edit",  # update() posts anew on it
    10015: "the webhook was deleted or webhook_url is wrong: create a new webhook and configure its URL",
    40005: "the message is too large",
    50006: "the message is empty",
    50027: "webhook_url has a wrong token",
    50035: "Discord refused a field of the message",
    220001: "a forum channel needs a thread: add ?thread_id=<id> to webhook_url",
}


def _link_url(url: str) -> str | None:
    """``url`` as Discord takes it in an embed or masked link (%-encoded), or ``None`` when Discord
    would refuse it ("Not a well formed URL" fails the whole message): too long, not http(s), or a
    host that is not plain ASCII letters, digits, dots and dashes (IDN hosts are sent as punycode)."""
    try:
        parts = urlsplit(one_line(url))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    if not _HOST.match(host):
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
        if not _HOST.match(host):
            return None
    netloc = host + (f":{port}" if port is not None else "")
    rest = quote(urlunsplit(("", "", parts.path, parts.query, parts.fragment)), safe=_URL_SAFE)
    rest = _STRAY_PERCENT.sub("%25", rest)  # a "%" that starts no %XX escape would make the URL malformed
    safe = f"{parts.scheme.lower()}://{netloc}{rest}"
    return safe if len(safe) <= URL_LIMIT else None


def _error_paths(errors: Any, path: str = "", found: list[str] | None = None) -> list[str]:
    """Discord's nested ``errors`` object as ``"embeds.0.description: Must be 4096 or fewer"``."""
    found = [] if found is None else found
    if not isinstance(errors, dict) or len(found) >= 3:
        return found
    messages = errors.get("_errors")
    if isinstance(messages, list):
        for entry in messages[:2]:
            if isinstance(entry, dict) and isinstance(entry.get("message"), str):
                found.append(f"{path or 'body'}: {entry['message']}")
    for key, value in list(errors.items())[:10]:
        if key != "_errors" and len(found) < 3:
            _error_paths(value, f"{path}.{key}" if path else str(key), found)
    return found


class DiscordTransport(HttpTransport):
    """Post alerts to a Discord channel through a webhook, as one embed; edit it on resolve.

    The message: a ``content`` line (icon and subject, what notifications show) and one embed
    with the title (severity or RESOLVED/ACKNOWLEDGED), the message as description, a colour by
    severity (green once resolved), fields for severity, status, tags, links and metadata, the
    source as author, ids in the footer, the alert's time as timestamp and its first link as the
    title's URL, all within Discord's limits (see ``_limits.py``) and escaped for Discord
    markdown. ``allowed_mentions`` is ``{"parse": []}``: nothing in an alert can ping anyone.

    Alerts are posted with ``?wait=true`` so Discord answers with the message; its id is the
    handle (``Sent(handle={"message_id": …})``) and :meth:`update` edits that message
    (``PATCH {webhook_url}/messages/{id}``) when the alert is acknowledged or resolved.

    One-off sends by URL: ``discord://[<username>@]<webhook_id>/<webhook_token>`` is
    ``https://discord.com/api/webhooks/<webhook_id>/<webhook_token>`` (apprise's form), with
    ``?thread_id=`` (or apprise's ``thread=``), ``?avatar_url=`` and ``?username=``;
    ``discord+https://<host>[:<port>]/<path>`` posts to that https URL instead (a proxy, a test
    server).

    Args:
        webhook_url: the webhook URL (any https URL; a secret, masked everywhere). Its query is
            kept (``?thread_id=`` posts into a thread).
        username: the name shown for the message (default: the webhook's own); 1 to 80 characters.
        avatar_url: an https image URL shown as the avatar (default: the webhook's own).
        timeout: seconds for the whole request (connect, TLS, answer).
        http_client: 0.1.x injection point (``post(url, *, json, headers, timeout)``).
        name: the channel name (default ``discord``).
        format: a formatter name; the embed layout above unless a channel picks another
            formatter, whose text then becomes the description.

    Raises:
        AlertConfigurationError: a missing or non-https URL, a username Discord refuses.
    """

    name = "discord"
    provider = "Discord"
    secret_fields = ("webhook_url",)
    #: ``alert-infra send --to discord://…``: see :meth:`from_url` (shown in errors, never the URL).
    url_schemes: ClassVar[tuple[str, ...]] = ("discord", "discord+https")
    url_form: ClassVar[str] = (
        "discord://[<username>@]<webhook_id>/<webhook_token>[?thread_id=…&avatar_url=…]"
        " or discord+https://<webhook URL>"
    )
    env_vars: ClassVar[dict[str, str]] = {"webhook_url": "ALERT_DISCORD_WEBHOOK_URL"}

    def __init__(
        self,
        webhook_url: str,
        *,
        username: str | None = None,
        avatar_url: str | None = None,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        self.webhook_url = self.secret_option("webhook_url", webhook_url, https=True)
        parts = urlsplit(self.webhook_url)
        path = parts.path.rstrip("/")
        segments = path.rsplit("/", 2)
        if len(segments) == 3 and _ID.match(segments[1]) and len(segments[2]) >= 8:
            # Discord's /webhooks/<id>/<token>: the token alone too, should Discord or a proxy quote it.
            register_secret(segments[2], owner=self)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
        self._base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self._query = urlencode(query)
        #: Execute: the webhook URL with ``wait=true`` added (its other query parameters kept).
        self._execute_url = f"{self._base}?{urlencode([*query, ('wait', 'true')])}"
        self.username = self._check_username(username)
        self.avatar_url = None if avatar_url is None else self.url_option("avatar_url", avatar_url)

    @staticmethod
    def _check_username(username: object) -> str | None:
        if username is None:
            return None
        if not isinstance(username, str) or not username.strip():
            raise AlertConfigurationError("Discord username must be a non-empty string (or left out)")
        cleaned = one_line(username)
        if units(cleaned) > USERNAME_LIMIT:
            raise AlertConfigurationError(f"Discord username must be at most {USERNAME_LIMIT} characters")
        lowered = cleaned.lower()
        if any(word in lowered for word in _USERNAME_FORBIDDEN) or lowered in ("everyone", "here"):
            raise AlertConfigurationError(
                "Discord username may not contain @, #, :, ```, 'discord' or 'clyde', nor be 'everyone' or"
                " 'here' (Discord refuses such webhook names): choose another"
            )
        return cleaned

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> DiscordTransport:
        """Build from ``discord://[<username>@]<webhook_id>/<webhook_token>[?thread_id=…&avatar_url=…
        &username=…]`` (``thread=`` is accepted for ``thread_id`` and ``botname=`` for ``username``, as
        apprise writes them), or from ``discord+https://<host>[:<port>]/<path>[?…]``: that https URL is
        the webhook URL (its ``username`` and ``avatar_url`` parameters are ours and taken out). The
        whole URL is a secret.

        Raises:
            AlertConfigurationError: not one of those forms, a webhook id that is not a number, no
                token, an unknown parameter (the message shows the expected form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        if isinstance(url, str) and url.strip()[:16].lower() == "discord+https://":
            return cls._from_https_url(url, name)
        parsed = parse_channel_url(
            url,
            ("discord",),
            provider="Discord",
            form=cls.url_form,
            options=("thread_id", "thread", "username", "botname", "avatar_url"),
        )
        query = parsed.query
        if {"thread", "thread_id"} <= query.keys() or {"botname", "username"} <= query.keys():
            raise AlertConfigurationError(
                f"Discord URL: give thread_id or thread, username or botname, once ({cls.url_form})"
            )
        thread = query.get("thread_id", query.get("thread"))
        if thread is not None and not _ID.match(thread):
            raise AlertConfigurationError(f"Discord URL: thread_id must be a number ({cls.url_form})")
        if parsed.password is not None:  # a username cannot hold ':' (Discord refuses it)
            raise AlertConfigurationError(f"Discord URL: the username before '@' must not contain ':' ({cls.url_form})")
        if not parsed.parts or not _ID.match(parsed.parts[0]):
            raise AlertConfigurationError(f"Discord URL: the webhook id must be a number ({cls.url_form})")
        if len(parsed.parts) != 2 or not _TOKEN.match(parsed.parts[1]):
            raise AlertConfigurationError(f"Discord URL: give the webhook token after the id ({cls.url_form})")
        webhook = f"{DISCORD_API}/{parsed.parts[0]}/{parsed.parts[1]}"
        if thread is not None:
            webhook += f"?thread_id={thread}"
        username = query.get("username", query.get("botname", parsed.user or None))
        return cls(webhook, username=username, avatar_url=query.get("avatar_url"), name=name)

    @classmethod
    def _from_https_url(cls, url: str, name: str | None) -> DiscordTransport:
        """``discord+https://…``: the webhook URL itself, its query passed through but for our
        ``username``/``avatar_url`` (and apprise's ``botname``). Not on the core's
        ``parse_channel_url``: that one refuses any query name it is not told, and this query is the
        receiver's (a proxy's token, ``thread_id``...)."""
        register_secret(url)  # before anything can fail: no message or log line shows it
        try:
            parts = urlsplit("https://" + url.strip()[16:])
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise AlertConfigurationError(f"Discord URL is not a valid URL ({cls.url_form})") from None
        if not parts.hostname or not parts.path.strip("/"):
            raise AlertConfigurationError(f"Discord URL has no host or no path ({cls.url_form})")
        ours: dict[str, str] = {}
        kept: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("username", "avatar_url", "botname"):
                ours["username" if key == "botname" else key] = value
            else:
                kept.append((key, value))
        webhook = urlunsplit(("https", parts.netloc, parts.path, urlencode(kept), ""))
        return cls(webhook, username=ours.get("username"), avatar_url=ours.get("avatar_url"), name=name)

    @classmethod
    def from_env(cls, *, env_var: str = "ALERT_DISCORD_WEBHOOK_URL", **kwargs: Any) -> DiscordTransport:
        """Build from the environment variable ``env_var``."""
        return super().from_env(env={"webhook_url": env_var}, **kwargs)  # type: ignore[no-any-return]

    # -- payload -----------------------------------------------------------------------------
    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The execute-webhook body for ``alert``: ``content``, one embed, ``allowed_mentions``
        (and ``username``/``avatar_url`` when configured)."""
        payload = self._message(alert)
        if self.username:
            payload["username"] = self.username
        if self.avatar_url:
            payload["avatar_url"] = self.avatar_url
        return payload

    def _message(self, alert: Alert) -> dict[str, Any]:
        """``content``, the embed and ``allowed_mentions``: what a send and an edit both carry."""
        icon = STATUS_ICONS.get(alert.status) or ICONS.get(alert.severity, "")
        full = self.format == self.default_formatter
        return {
            "content": fit(f"{icon} {subject_line(alert)}".strip(), min(CONTENT_BUDGET, CONTENT_LIMIT)),
            "embeds": [self._embed(alert, full)],
            # No @everyone/@here, user or role ping, whatever the text holds.
            "allowed_mentions": {"parse": []},
        }

    def _embed(self, alert: Alert, full: bool) -> dict[str, Any]:
        """One embed within every per-part limit and :data:`EMBED_TOTAL_LIMIT` (see the budgets above).

        Order of precedence: title, author, footer and the fixed fields (each capped), then the
        message (keeping :data:`METADATA_RESERVE` for metadata when there is some), then metadata
        fields while room and the 25-field limit last, and a last field that says how many are
        not shown.
        """
        created = alert.created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        embed: dict[str, Any] = {
            "title": _shown(fit(f"{status_label(alert)}: {alert.title}", TITLE_LIMIT, links=False), "Alert"),
            "color": STATUS_COLOURS.get(alert.status) or COLOURS.get(alert.severity, COLOURS["info"]),
            "timestamp": created.astimezone(timezone.utc).isoformat(),
        }
        used = units(embed["title"])
        if alert.source and one_line(alert.source):
            embed["author"] = {"name": plain(alert.source, AUTHOR_LIMIT)}
            used += units(embed["author"]["name"])
        footer = [f"fingerprint {alert.fingerprint}", f"id {alert.correlation_id}"]
        if alert.request_id:
            footer.append(f"request {alert.request_id}")
        each = FOOTER_BUDGET // len(footer) - 3
        embed["footer"] = {"text": plain(" · ".join(plain(part, each) for part in footer), FOOTER_BUDGET)}
        used += units(embed["footer"]["text"])
        links = [(label, url) for label, url in ((label, _link_url(url)) for label, url in alert.links[:50]) if url]
        if links:
            embed["url"] = links[0][1]
        fields: list[dict[str, Any]] = []
        if full:
            fields.append(_field("Severity", alert.severity, inline=True))
            if alert.status != "firing":
                fields.append(_field("Status", alert.status, inline=True))
            if alert.tags:
                fields.append(_field("Tags", ", ".join(alert.tags[:100]), limit=TAGS_BUDGET))
        if links:
            fields.append({"name": "Links", "value": _masked_links(links), "inline": False})
        used += sum(units(f["name"]) + units(f["value"]) for f in fields)
        metadata = alert.redacted().metadata if full else {}
        left = EMBED_TOTAL_LIMIT - used
        text = alert.message if full else self.render(alert).text
        room = min(DESCRIPTION_LIMIT, left - (METADATA_RESERVE if metadata else 0))
        embed["description"] = _shown(fit(text, room, multiline=True), "(no message)")
        left -= units(embed["description"])
        if metadata:
            left -= self._metadata_fields(metadata, fields, left)
        embed["fields"] = fields
        return embed

    @staticmethod
    def _metadata_fields(metadata: Mapping[Any, Any], fields: list[dict[str, Any]], left: int) -> int:
        """Append metadata fields while ``left`` units and the field limit last; a last field says
        how many are not shown. Return the units added."""
        used = 0
        shown = 0
        slots = MAX_FIELDS - len(fields) - 1  # one kept for the note
        for key, value in metadata_lines(dict(islice(metadata.items(), slots))):
            name = _shown(fit(key, FIELD_NAME_LIMIT, links=False))
            room = min(FIELD_VALUE_LIMIT, left - used - NOTE_ROOM - units(name))
            if room < MIN_VALUE_ROOM:
                break
            shown_value = _shown(fit(value, room, multiline=True))
            inline = units(shown_value) <= INLINE_VALUE and "\n" not in shown_value
            fields.append({"name": name, "value": shown_value, "inline": inline})
            used += units(name) + units(shown_value)
            shown += 1
        if shown < len(metadata):
            note = _field("Metadata", f"{len(metadata) - shown} more fields not shown")
            size = units(note["name"]) + units(note["value"])
            if size <= left - used and len(fields) < MAX_FIELDS:
                fields.append(note)
                used += size
        return used

    # -- delivery ------------------------------------------------------------------------------
    def endpoint(self, alert: Alert) -> str:
        return self._execute_url

    def message_url(self, message_id: str) -> str:
        """``{webhook_url}/messages/{message_id}`` with the webhook URL's query (``thread_id``) kept."""
        return f"{self._base}/messages/{message_id}" + (f"?{self._query}" if self._query else "")

    def update(self, alert: Alert, handle: Mapping[str, Any]) -> Sent | None:
        """Edit the message ``handle`` names (``{"message_id": …}``, what :meth:`send` returned) to
        show ``alert`` as it is now: RESOLVED in green, ACKNOWLEDGED in grey, or firing again.

        A message deleted in Discord (``404`` code ``10008`` Unknown Message) is posted anew, as
        Slack and Telegram do with a message they cannot edit: a resolve must reach the channel.
        The result is then the new message's handle (the notification log keeps it, so a later
        resolve edits the new message) and a detail that says why it was posted.

        Raises:
            NonRetryableAlertTransportError: a handle without a message id (no request is made);
                any other ``404`` (``10015``: the webhook itself was deleted; posting anew would
                fail alike); other answers, and those of the new post, as for :meth:`send`.
        """
        message_id = handle.get("message_id") if isinstance(handle, Mapping) else None
        if isinstance(message_id, int) and not isinstance(message_id, bool):
            message_id = str(message_id)
        if not isinstance(message_id, str) or not _ID.match(message_id):
            raise NonRetryableAlertTransportError("Discord: the handle has no message_id: cannot edit the message")
        response = self.call("PATCH", self.message_url(message_id), self._message(alert))
        if response.status == 404:
            body = response.json()
            if isinstance(body, dict) and body.get("code") == UNKNOWN_MESSAGE:
                posted = self.send(alert)
                new = posted.handle if isinstance(posted, Sent) else None
                return Sent(f"posted a new message: message {message_id} was deleted", new)
        return self._check(response, edit=message_id)

    def check_response(self, response: HttpResponse) -> Sent | None:
        """200 with the message (``?wait=true``): its id is the handle. See :meth:`_check`."""
        return self._check(response, edit=None)

    def _check(self, response: HttpResponse, *, edit: str | None) -> Sent | None:
        """2xx: the message's id as the handle (a 2xx HTML page from a proxy is a failure). 429:
        retryable after the body's ``retry_after`` (float seconds; else ``Retry-After``, else
        ``X-RateLimit-Reset-After``), "global" said when Discord says so. Other statuses by the base
        rules (5xx retryable; 400, 401, 403, 404 not), with Discord's code and what to do."""
        status = response.status
        body = response.json()
        if 200 <= status < 300:
            if isinstance(body, dict):
                message_id = body.get("id")
                if isinstance(message_id, str) and _ID.match(message_id):
                    verb = "edited" if edit else "posted"
                    return Sent(detail=f"{verb} message {message_id}", handle={"message_id": message_id})
                return None
            if status == 204 or not response.text.strip():
                return None  # delivered without a message (a webhook URL without wait=true)
            raise_for_status(response, provider="Discord", detail="unexpected response body", retryable=False)
        if status == 429:
            self._rate_limited(response, body)
        raise_for_status(response, provider="Discord", detail=self._error_text(response, body, edit))
        return None  # pragma: no cover - raise_for_status raised

    @staticmethod
    def _rate_limited(response: HttpResponse, body: Any) -> None:
        info = body if isinstance(body, dict) else {}
        wait = info.get("retry_after")
        retry_after: float | None = None
        if isinstance(wait, (int, float)) and not isinstance(wait, bool) and math.isfinite(wait) and wait >= 0:
            retry_after = float(wait)
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("x-ratelimit-reset-after"))
        scope = response.headers.get("x-ratelimit-scope", "").strip().lower()
        is_global = info.get("global") is True or response.headers.get("x-ratelimit-global", "").lower() == "true"
        detail = "rate limited"
        if is_global:
            detail += " (global: every request from this host waits)"
        elif scope in ("user", "shared"):
            detail += f" ({scope} limit of this webhook)"
        raise_for_status(response, provider="Discord", detail=detail, retryable=True, retry_after=retry_after)

    @staticmethod
    def _error_text(response: HttpResponse, body: Any, edit: str | None) -> str | None:
        """``"10015 Unknown Webhook (<what to do>)"`` from Discord's ``{"code", "message", "errors"}``."""
        if not isinstance(body, dict):
            return None
        code = body.get("code")
        parts = []
        if isinstance(code, int) and not isinstance(code, bool):
            parts.append(str(code))
        if isinstance(body.get("message"), str):
            parts.append(body["message"].strip())
        text = " ".join(part for part in parts if part)
        hint = ERROR_HINTS.get(code) if isinstance(code, int) else None
        if response.status == 404 and edit and hint is None:
            hint = ERROR_HINTS[10008] if code != 10015 else None
        errors = _error_paths(body.get("errors"))
        extra = "; ".join(filter(None, [hint, *errors]))
        # "Code Message (what to do; field: problem)": no colon after Discord's message, whose last
        # word may be "Token" (the redactor would take what follows for a token).
        return f"{text} ({extra})" if text and extra else (text or extra or None)


def _shown(text: str, fallback: str = "(empty)") -> str:
    """``text``, or ``fallback`` when Discord would find it empty (it trims whitespace and refuses
    an empty field name or value with 50035)."""
    return fallback if _BLANK.match(text) else text


def _field(name: str, value: str, *, inline: bool = False, limit: int = FIELD_VALUE_LIMIT) -> dict[str, Any]:
    return {
        "name": _shown(fit(name, FIELD_NAME_LIMIT, links=False)),
        "value": _shown(fit(value, limit)),
        "inline": inline,
    }


def _masked_links(links: list[tuple[str, str]]) -> str:
    """``[label](url)`` lines while :data:`LINKS_BUDGET` lasts (labels escaped, URLs %-encoded)."""
    out: list[str] = []
    used = 0
    for label, url in links:
        # No brackets in a label: an escaped one still ends Discord's masked-link label.
        text = _shown(fit(label.replace("[", "(").replace("]", ")"), LINK_LABEL_LIMIT, links=False), "link")
        line = f"[{text}]({url})"
        size = units(line) + (1 if out else 0)
        if used + size > LINKS_BUDGET:
            continue
        out.append(line)
        used += size
    if len(out) < len(links):
        note = f"{len(links) - len(out)} more links not shown"
        if used + len(note) + 1 <= LINKS_BUDGET:
            out.append(note)
    return "\n".join(out) or "(links too long to show)"
