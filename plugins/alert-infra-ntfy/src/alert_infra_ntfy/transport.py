"""``NtfyTransport``: push notifications through ntfy (ntfy.sh or a self-hosted server)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from alert_infra import AlertConfigurationError, Sent
from alert_infra.formatting import metadata_lines
from alert_infra.http import HttpResponse, HttpTransport, raise_for_status, status_label
from alert_infra.security import register_secret

from ._limits import (
    BODY_BYTES,
    DETAILS_BYTES,
    LABEL_CHARS,
    LINKS_BYTES,
    MAX_ACTIONS,
    MAX_TAGS,
    MESSAGE_BYTES,
    TAG_CHARS,
    TITLE_CHARS,
    URL_CHARS,
    clean,
    fit,
    json_bytes,
    one_line,
    shorten,
)

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["PUBLIC_SERVER", "NtfyTransport"]

#: The public server (the default ``api_url``).
PUBLIC_SERVER = "https://ntfy.sh"
#: ntfy's topic rule (``topicRegex`` in the server), and the names its default configuration refuses
#: (``DefaultDisallowedTopics``: paths of the web app and API; 400 with code 40010).
TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")
DISALLOWED_TOPICS = frozenset(
    {"docs", "static", "file", "app", "metrics", "account", "settings", "signup", "login", "v1"}
)
#: Priority (1 min … 5 max) by severity; a resolve or acknowledgement is ntfy's default (3).
PRIORITIES = {"info": 3, "warning": 4, "error": 4, "critical": 5}
DEFAULT_PRIORITY = 3
#: The first tag: an emoji short code ntfy shows before the title (severity, or the status once handled).
SEVERITY_TAGS = {"info": "information_source", "warning": "warning", "error": "x", "critical": "rotating_light"}
STATUS_TAGS = {"resolved": "white_check_mark", "acknowledged": "eyes"}
#: A server in ``ntfy://host[:port]/topic``: a name or an [IPv6] address, a port of 1 to 5 digits.
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
#: Waits when a 429 carries no Retry-After: ntfy's request bucket refills one request every 5 s
#: (``visitor-request-limit-replenish``), an auth-failure bucket one a minute.
RATE_LIMIT_WAITS = {42901: 5.0, 42909: 60.0}
#: Daily quotas (messages, attachment bandwidth, calls) reset at midnight UTC
#: (``visitor-stats-reset-time``): the wait is until then.
DAILY_QUOTA_CODES = frozenset({42905, 42908, 42910})

_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"


def _link_url(url: str) -> str | None:
    """``url`` as a valid http(s) URI for a click or a button, or ``None`` (not http(s), too long)."""
    safe = quote(one_line(url), safe=_URL_SAFE)
    if not safe.lower().startswith(("https://", "http://")) or len(safe) > URL_CHARS:
        return None
    return safe


def _tag(text: str) -> str:
    """A tag as ntfy keeps it: one line, no comma (the server splits the tags on commas)."""
    return shorten(one_line(text.replace(",", " ")), TAG_CHARS)


def _seconds_to_midnight_utc(now: datetime | None = None) -> float:
    now = now or datetime.now(timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - now).total_seconds())


class NtfyTransport(HttpTransport):
    """Publish alerts to an ntfy topic, on the public server or a self-hosted one.

    One JSON publish per alert (``POST {api_url}/`` with ``topic``, ``title``, ``message``,
    ``priority``, ``tags``, ``click``, ``actions``): the topic travels in the body, never in the
    URL, so no proxy or access log sees it.

    * ``priority``: info 3 (default), warning and error 4 (high), critical 5 (max: a long
      vibration burst and a pop-over on Android); a resolve or acknowledgement 3.
    * ``tags``: an emoji for the severity (``information_source``, ``warning``, ``x``,
      ``rotating_light``; ``white_check_mark`` for a resolve, ``eyes`` for an acknowledgement),
      the severity or status as a word (subscribers can filter with ``?tags=critical``), then
      the alert's tags (commas replaced: ntfy splits tags on them).
    * ``click``: the first http(s) link; up to three links become ``view`` buttons.
    * ``message``: the alert's message, then its source, metadata, other links and ids, within
      ntfy's 4,096-byte message limit (beyond it ntfy would turn the text into an attachment)
      and its 8,192-byte request limit, cut visibly (see ``_limits.py``).

    ntfy cannot edit a published notification (before 2.16): a resolved or acknowledged alert
    is a new notification titled ``RESOLVED: <title>`` (or ``ACKNOWLEDGED``) that names the
    firing one by title and fingerprint. ntfy's message id is returned as the handle.

    The topic is a secret: on a server without access control, whoever knows it can read and
    publish. Pick a long random one (``alerts-7Hq2vX9mP4kL``), or protect it with a token.

    One-off sends by URL (see :meth:`from_url`): ``ntfy://[user:password@|token@]host[:port]/topic``
    or ``ntfy://topic`` for ntfy.sh.

    Args:
        topic: the topic (``[-_A-Za-z0-9]{1,64}``); a secret.
        api_url: the server (default ``https://ntfy.sh``); https only.
        token: an access token (``tk_…``), sent as ``Authorization: Bearer``; a secret.
        username: with ``password``, sent as ``Authorization: Basic`` (not with ``token``).
        password: the user's password; a secret.
        timeout: seconds for the whole request (connect, TLS, answer).
        http_client: 0.1.x injection point (``post(url, *, json, headers, timeout)``).
        name: the channel name (default ``ntfy``).
        format: a formatter name: its subject becomes the title and its text the message
            (default: the layout above).

    Raises:
        AlertConfigurationError: a missing or invalid topic, a non-https ``api_url``, ``token``
            together with ``username``/``password``, or half of a username and password (the
            message names the option, never its value).
    """

    name = "ntfy"
    provider = "ntfy"
    secret_fields = ("topic", "token", "password")
    #: ``alert-infra send --to ntfys://…``: see :meth:`from_url` (shown in errors, never the URL).
    url_schemes: ClassVar[tuple[str, ...]] = ("ntfy", "ntfys")
    url_form: ClassVar[str] = (
        "ntfy://[user:password@|token@]host[:port]/topic, or ntfy://topic for ntfy.sh (ntfys:// alike)"
    )
    env_vars: ClassVar[dict[str, str]] = {"topic": "ALERT_NTFY_TOPIC"}

    def __init__(
        self,
        topic: str,
        *,
        api_url: str = PUBLIC_SERVER,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        for secret in (token, password):  # registered before anything is checked: no error shows them
            if isinstance(secret, str) and secret:
                register_secret(secret, owner=self)
        self.topic = self.secret_option("topic", topic)
        if not TOPIC.match(self.topic):
            raise AlertConfigurationError("ntfy topic must be 1 to 64 letters, digits, '-' or '_' (ntfy's topic rule)")
        if self.topic.lower() in DISALLOWED_TOPICS:
            raise AlertConfigurationError(
                "ntfy topic is a name ntfy reserves for its web app and API: pick another topic"
            )
        self.api_url = self.url_option("api_url", api_url).rstrip("/")
        self.token = self._credential("token", token)
        self.username = self._credential("username", username)
        self.password = self._credential("password", password)
        if self.token is not None and (self.username is not None or self.password is not None):
            raise AlertConfigurationError(
                "ntfy token and username/password are two ways to authenticate: give one of them, not both"
            )
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise AlertConfigurationError(f"ntfy {missing} is required with the other half of basic auth")
        if self.username is not None and ":" in self.username:
            raise AlertConfigurationError("ntfy username must not contain ':' (basic auth splits on it)")
        self._authorization = self._authorization_header()

    @staticmethod
    def _credential(field: str, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise AlertConfigurationError(f"ntfy {field} must be a non-empty string when given")
        if _HEADER_UNSAFE.search(value.strip()):
            raise AlertConfigurationError(f"ntfy {field} must not contain control characters or line breaks")
        return value.strip()

    def _authorization_header(self) -> str | None:
        if self.token is not None:
            return f"Bearer {self.token}"
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            register_secret(encoded, owner=self)  # the header value is as secret as the password
            return f"Basic {encoded}"
        return None

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> NtfyTransport:
        """Build from our URL form (apprise's ntfy syntax, always over https):

        * ``ntfy://mytopic``: the topic on ntfy.sh;
        * ``ntfy://ntfy.example.com[:port]/mytopic``: a self-hosted server;
        * ``ntfy://user:password@host/mytopic``: basic auth (percent-encode ``@``, ``:``, ``/``);
        * ``ntfy://tk_token@host/mytopic``: an access token.

        ``ntfys://`` is the same: alert-infra never publishes over plain HTTP (apprise's ``ntfy://``
        would). One topic per channel. The whole URL is a secret.

        Raises:
            AlertConfigurationError: not an ``ntfy://``/``ntfys://`` URL, no topic, several topics,
                an invalid port or topic (the message shows the form, never the URL).
        """
        from alert_infra.urls import parse_channel_url

        parsed = parse_channel_url(url, cls.url_schemes, provider="ntfy", form=cls.url_form)
        if not parsed.parts:
            raise AlertConfigurationError(f"ntfy URL has no host or topic ({cls.url_form})")
        if len(parsed.parts) > 2:
            raise AlertConfigurationError(f"ntfy URL names several topics: a channel publishes to one ({cls.url_form})")
        if len(parsed.parts) == 2:
            hostport, topic = parsed.parts
            if not _HOSTPORT.match(hostport):
                raise AlertConfigurationError(f"ntfy URL has an invalid host or port ({cls.url_form})")
            api_url = "https://" + hostport
        else:
            topic, api_url = parsed.parts[0], PUBLIC_SERVER  # ntfy://topic: the case of the topic is kept
        token = username = password = None
        if parsed.password is not None:
            username, password = parsed.user, parsed.password
        elif parsed.user is not None:
            token = parsed.user
        return cls(topic, api_url=api_url, token=token, username=username, password=password, name=name)

    @classmethod
    def from_env(cls, *, env_var: str = "ALERT_NTFY_TOPIC", **kwargs: Any) -> NtfyTransport:
        """Build from the environment variable ``env_var`` (the topic); other options as keywords."""
        return super().from_env(env={"topic": env_var}, **kwargs)  # type: ignore[no-any-return]

    # -- payload -----------------------------------------------------------------------------
    def build_payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON publish request for ``alert``, within ntfy's limits for any alert (see ``_limits.py``)."""
        full = self.format == self.default_formatter
        label = status_label(alert)
        if full:
            title = f"{label}: {one_line(alert.title)}"
        else:
            title = one_line(self.render(alert).subject)
        firing = alert.status == "firing"
        tags = [SEVERITY_TAGS[alert.severity] if firing else STATUS_TAGS[alert.status], label.lower()]
        seen = set(tags)
        for tag in (_tag(t) for t in alert.tags):
            if len(tags) >= MAX_TAGS + 2:
                break
            if tag and tag not in seen:
                seen.add(tag)
                tags.append(tag)
        payload: dict[str, Any] = {
            "topic": self.topic,
            "title": shorten(title, TITLE_CHARS) or label,
            "message": "",
            "priority": PRIORITIES[alert.severity] if firing else DEFAULT_PRIORITY,
            "tags": tags,
        }
        shown = self._links(alert, payload)
        head, tail = self._text(alert, full, shown)
        payload["message"] = self._fit_message(head, tail, BODY_BYTES - json_bytes(payload) + 2)
        return payload

    @staticmethod
    def _links(alert: Alert, payload: dict[str, Any]) -> int:
        """Set ``click`` (the first link) and up to three ``view`` buttons within ``LINKS_BYTES``;
        return how many links became buttons."""
        budget = LINKS_BYTES
        actions: list[dict[str, Any]] = []
        for label, url in alert.links:
            safe = _link_url(url)
            if safe is None:
                continue
            if "click" not in payload:
                payload["click"] = safe
                budget -= json_bytes(safe) + 9
            if len(actions) == MAX_ACTIONS:
                break
            action = {"action": "view", "label": shorten(one_line(label), LABEL_CHARS) or "Open", "url": safe}
            size = json_bytes(action) + 1
            if size > budget:
                break
            actions.append(action)
            budget -= size
        if actions:
            payload["actions"] = actions
        return len(actions)

    def _text(self, alert: Alert, full: bool, buttons: int) -> tuple[str, str]:
        """(the message, the details under it) as plain text."""
        if not full:
            text = self.render(alert).text
            return clean(text.partition("\n")[2] or text) or "-", ""
        head = clean(alert.message)
        if alert.status != "firing":
            verb = "Resolves" if alert.status == "resolved" else "Acknowledges"
            note = f'{verb} the alert "{one_line(alert.title)}" (fingerprint {one_line(alert.fingerprint)})'
            head = f"{note}\n\n{head}" if head else note
        lines = []
        if alert.source:
            lines.append(f"Source: {one_line(alert.source)}")
        for key, value in metadata_lines(dict(islice(alert.metadata.items(), 50))):
            lines.append(f"{one_line(key)}: {one_line(value)}")
        for link_label, url in alert.links[buttons : buttons + 10]:
            lines.append(f"{one_line(link_label)}: {one_line(url)}")
        if alert.status == "firing":
            lines.append(f"Fingerprint: {one_line(alert.fingerprint)}")
        lines.append(f"Alert ID: {one_line(alert.correlation_id)}")
        return head or "-", "\n".join(line for line in lines if line)

    @staticmethod
    def _fit_message(head: str, tail: str, max_json: int) -> str:
        """``head`` and ``tail`` within ``MESSAGE_BYTES`` and ``max_json`` JSON bytes: whole when they
        fit; else the details are cut to ``DETAILS_BYTES`` and the message takes the rest."""
        whole = f"{head}\n\n{tail}" if tail else head
        if len(whole.encode("utf-8")) <= MESSAGE_BYTES and json_bytes(whole) <= max_json:
            return whole
        if not tail:
            return fit(head, MESSAGE_BYTES, max_json) or "-"
        tail = fit(tail, DETAILS_BYTES, DETAILS_BYTES)
        head = fit(head, MESSAGE_BYTES - len(tail.encode("utf-8")) - 2, max_json - json_bytes(tail) - 2)
        return f"{head}\n\n{tail}" if head else fit(tail, MESSAGE_BYTES, max_json)

    # -- delivery ------------------------------------------------------------------------------
    def endpoint(self, alert: Alert) -> str:
        return self.api_url + "/"  # JSON publishing: the topic is in the body

    def request_headers(self, alert: Alert) -> dict[str, str] | None:
        return {"Authorization": self._authorization} if self._authorization else None

    def check_response(self, response: HttpResponse) -> Sent | None:
        """200 with the published message: its ``id`` is the handle. A 2xx HTML page (a proxy, a
        web server that is not ntfy) is a failure. Errors (``{"code", "http", "error", "link"}``):
        401/403 (auth), 400 (topic or request invalid), 413 (too large) are not retryable; 429
        is, after ``Retry-After`` or the wait its code implies (see :data:`RATE_LIMIT_WAITS`,
        :data:`DAILY_QUOTA_CODES`); 5xx are."""
        body = response.json()
        if 200 <= response.status < 300:
            if not isinstance(body, dict):
                head = response.text.lstrip()[:15].lower()
                if head.startswith(("<!doctype", "<html")):
                    raise_for_status(
                        response,
                        provider="ntfy",
                        detail="an HTML page, not ntfy's answer: check api_url",
                        retryable=False,
                    )
                return None
            message_id = body.get("id")
            if isinstance(message_id, str) and _MESSAGE_ID.match(message_id):
                return Sent(detail=f"ntfy message {message_id}", handle={"id": message_id})
            return None
        code = body.get("code") if isinstance(body, dict) else None
        retry_after = None
        if response.status == 429 and "retry-after" not in response.headers and isinstance(code, int):
            retry_after = _seconds_to_midnight_utc() if code in DAILY_QUOTA_CODES else RATE_LIMIT_WAITS.get(code)
        raise_for_status(response, provider="ntfy", detail=self.error_detail(response), retry_after=retry_after)
        return None  # pragma: no cover - raise_for_status raised

    def error_detail(self, response: HttpResponse) -> str | None:
        """``<code> <error>`` from ntfy's error body (``{"code": 42901, "http": 429, "error": "limit
        reached: too many requests, please be nice", "link": …}``)."""
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, str):
            code = body.get("code")
            prefix = f"{code} " if isinstance(code, int) and not isinstance(code, bool) else ""
            return prefix + error
        return super().error_detail(response)
