"""``WebhookTransport``: the alert as versioned JSON to any HTTPS URL, signed per Standard Webhooks."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping
from urllib.parse import urlsplit

from alert_infra import AlertConfigurationError, Sent
from alert_infra.http import HttpResponse, HttpTransport, raise_for_status
from alert_infra.security import redact_metadata, redact_text, register_secret

from .signing import decode_secret, sign

if TYPE_CHECKING:
    from alert_infra import Alert
    from alert_infra.templates import Template

__all__ = [
    "EVENT_TYPES",
    "FORBIDDEN_HEADERS",
    "MAX_BODY_BYTES",
    "SCHEMA_VERSION",
    "URL_FORM",
    "WebhookTransport",
]

#: The version of the alert JSON (``"version"`` in every body). A change that could break a
#: receiver (a field removed, renamed or retyped) gets a new version; new fields do not.
SCHEMA_VERSION = "1"
#: ``type`` of the body by alert status.
EVENT_TYPES = {"firing": "alert.firing", "acknowledged": "alert.acknowledged", "resolved": "alert.resolved"}
#: Largest body sent (bytes, as sent). Standard Webhooks recommends ~20 KB; an alert with a stack
#: trace in its metadata needs more, and common receivers (1 MiB default in nginx and most
#: frameworks) take far more. Past it, long strings and long lists are cut visibly (see ``_shrink``).
MAX_BODY_BYTES = 64 * 1024
#: Header names refused in ``headers`` (lower case): the request's framing and hop-by-hop headers
#: (a wrong value desynchronises or breaks the request), ``Content-Type`` (the ``content_type``
#: option sets it) and the Standard Webhooks headers (this channel sets them at every try).
FORBIDDEN_HEADERS = frozenset(
    {
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
#: At most this many custom headers, each value at most ``HEADER_VALUE_LIMIT`` characters
#: (servers commonly refuse more than 8 KiB of headers in all).
MAX_HEADERS = 32
HEADER_VALUE_LIMIT = 4096
#: The URL form of one-off sends (the syntax, never a URL).
URL_FORM = "webhook+https://<host>[:<port>]/<path>[?<query>]"
METHODS = ("POST", "PUT")

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")  # an HTTP field name (RFC 9110 token)
_MEDIA_TYPE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;[\x20-\x7e\t]*)?$")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but TAB: CR and LF above all
_TRUNCATED = "… [truncated]"
#: Cuts tried in turn until the body fits: (longest string kept, most items kept per list or mapping).
_CUTS = ((8192, 200), (2048, 100), (512, 50), (128, 20), (64, 10))


def is_json_type(content_type: str) -> bool:
    """``application/json`` or any ``+json`` media type (parameters such as ``charset`` aside)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # json.loads takes NaN and Infinity; receivers do not


def _cut_bytes(body: bytes, limit: int) -> bytes:
    """``body`` cut to at most ``limit`` bytes at a UTF-8 character boundary, ending in the marker."""
    marker = _TRUNCATED.encode("utf-8")
    return body[: limit - len(marker)].decode("utf-8", "ignore").encode("utf-8") + marker


def _quote(name: object) -> str:
    """A header name for an error message: redacted, cut (names are not secrets, but never trusted)."""
    text = redact_text(str(name))
    return repr(text if len(text) <= 40 else text[:39] + "…")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - len(_TRUNCATED))] + _TRUNCATED


def _shrink(value: Any, chars: int, items: int) -> Any:
    """``value`` with every string cut to ``chars`` characters and every list or mapping to ``items``
    entries (a dropped tail of a mapping is counted under ``"…"``)."""
    if isinstance(value, str):
        return _cut(value, chars)
    if isinstance(value, dict):
        kept = list(value.items())
        out = {_cut(str(k), chars): _shrink(v, chars, items) for k, v in kept[:items]}
        if len(kept) > items:
            out["…"] = f"{len(kept) - items} more entries not sent"
        return out
    if isinstance(value, list):
        out_list = [_shrink(v, chars, items) for v in value[:items]]
        if len(value) > items:
            out_list.append(f"… {len(value) - items} more not sent")
        return out_list
    return value


class WebhookTransport(HttpTransport):
    """POST (or PUT) each alert as versioned JSON to any HTTPS URL, signed per Standard Webhooks.

    The body (``SCHEMA_VERSION`` "1", documented in the README)::

        {"version": "1", "type": "alert.firing", "id": "msg_…", "timestamp": "<created_at>",
         "data": {"title", "message", "severity", "status", "source", "tags", "metadata",
                  "fingerprint", "created_at", "correlation_id", "request_id", "links"}}

    from the **redacted** alert (what ``Alert.to_dict()`` gives), within :data:`MAX_BODY_BYTES`.
    Acknowledged and resolved alerts are events of their own (``alert.acknowledged``,
    ``alert.resolved``) with the same ``fingerprint`` and ``correlation_id`` as the firing one.

    Every try carries ``webhook-id`` (see :meth:`webhook_id`: the same on every try of one alert to
    one channel, on any process) and ``webhook-timestamp`` (this try's); with a ``secret``, also
    ``webhook-signature`` over the exact bytes, computed anew at every try, so a retry an hour
    later is not refused by the receiver's 5-minute tolerance.

    Answers: 2xx delivered; 429 and 5xx retried (``Retry-After`` honoured); 410 not retried (the
    receiver asked to stop); other 4xx not retried; 3xx not followed and not retried.

    One-off sends by URL: ``webhook+https://<host>[:<port>]/<path>[?<query>]`` posts to
    ``https://<host>[:<port>]/<path>[?<query>]`` unsigned (see :meth:`from_url`).

    Args:
        url: the receiver, ``https://`` only (a secret: many receivers put a token in the URL).
        method: ``POST`` (default) or ``PUT``.
        headers: extra request headers, e.g. ``{"Authorization": "Bearer …"}``; every value is a
            secret. Names in :data:`FORBIDDEN_HEADERS` are refused.
        secret: a Standard Webhooks secret, ``whsec_`` + base64 of 24 to 64 random bytes
            (:func:`alert_infra_webhook.generate_secret` makes one); unsigned without it.
        template: the body as a template (Jinja2, in the core's sandbox; needs
            ``alert-infra[templates]``) instead of the alert JSON: it sees ``alert``; with a JSON
            ``content_type`` the output must be JSON (see :meth:`render_body`). Signed and bounded
            like the alert JSON.
        content_type: the body's ``Content-Type`` (default ``application/json``).
        timeout: seconds for the whole request (connect, TLS, answer).
        http_client: 0.1.x injection point; it needs a ``request(method, url, *, data, headers,
            timeout)`` method, since signed bytes cannot go through ``post(json=...)``.
        name: the channel name (default ``webhook``); part of ``webhook-id``.
        format: a formatter name; when one is set, its text is added as ``data.text``.

    Raises:
        AlertConfigurationError: naming the option at fault, never a secret.
    """

    name = "webhook"
    provider = "Webhook"
    secret_fields = ("url", "secret")
    url_schemes: ClassVar[tuple[str, ...]] = ("webhook+https",)
    url_form: ClassVar[str] = URL_FORM
    env_vars: ClassVar[dict[str, str]] = {"url": "ALERT_WEBHOOK_URL"}
    #: Unix seconds of a try (``webhook-timestamp``); replaceable per instance in tests.
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        secret: str | None = None,
        template: str | None = None,
        content_type: str = "application/json",
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
        # Every secret is registered before anything is checked: no message can show one.
        if isinstance(headers, Mapping):
            for value in headers.values():
                if isinstance(value, str):
                    register_secret(value, owner=self)
                    register_secret(value.strip(), owner=self)
        if isinstance(secret, str) and secret:
            register_secret(secret, owner=self)
        self.url = self.secret_option("url", url, https=True)
        self._key: bytes | None = None
        self.secret = None
        if secret is not None:
            self.secret = self.secret_option("secret", secret)
            try:
                self._key = decode_secret(self.secret)
            except ValueError as exc:
                raise AlertConfigurationError(
                    f"Webhook secret {exc}: a Standard Webhooks secret is whsec_ followed by the base64 of 24 to 64"
                    " random bytes (make one with alert_infra_webhook.generate_secret())"
                ) from None
        if not isinstance(method, str) or method.strip().upper() not in METHODS:
            raise AlertConfigurationError("Webhook method must be POST or PUT")
        self.method = method.strip().upper()
        self.headers = self._check_headers(headers)
        if not isinstance(content_type, str) or not _MEDIA_TYPE.match(content_type.strip()):
            raise AlertConfigurationError(
                "Webhook content_type must be a media type such as application/json (type/subtype[; parameters],"
                " no line breaks)"
            )
        self.content_type = content_type.strip()
        self.template: Template | None = None
        if template is not None:
            if format is not None:
                raise AlertConfigurationError(
                    "Webhook template and format: a template writes the whole body, so a formatter's text would"
                    " go nowhere; remove format (or template, to send the alert JSON with data.text)"
                )
            if not isinstance(template, str) or not template.strip():
                raise AlertConfigurationError(
                    "Webhook template must be template text (Jinja2), e.g. '{{ alert|tojson }}'"
                )
            # The core's engine and sandbox (needs alert-infra[templates]); checked now: syntax, the
            # variables (alert; alerts and group in a digest), the alert's field names.
            from alert_infra.templates import compile_channel_template

            self.template = compile_channel_template(template, "template", self.name)

    @staticmethod
    def _check_headers(headers: object) -> dict[str, str]:
        if headers is None:
            return {}
        if not isinstance(headers, Mapping):
            raise AlertConfigurationError("Webhook headers must be a mapping of header names to values")
        if len(headers) > MAX_HEADERS:
            raise AlertConfigurationError(f"Webhook headers: at most {MAX_HEADERS} headers")
        checked: dict[str, str] = {}
        for name, value in headers.items():
            if not isinstance(name, str) or not _TOKEN.match(name):
                raise AlertConfigurationError(
                    f"Webhook headers: {_quote(name)} is not a header name (letters, digits and !#$%&'*+-.^_`|~ only;"
                    " no spaces, colons or line breaks)"
                )
            if name.lower() in FORBIDDEN_HEADERS:
                what = (
                    "set content_type instead"
                    if name.lower() == "content-type"
                    else "this channel sets it at every try"
                    if name.lower().startswith("webhook-")
                    else "it frames the request, which the HTTP layer does"
                )
                raise AlertConfigurationError(f"Webhook headers: {name} cannot be set ({what})")
            if any(name.lower() == other.lower() for other in checked):
                raise AlertConfigurationError(f"Webhook headers: {name} is given twice (names ignore case)")
            if not isinstance(value, str):
                raise AlertConfigurationError(f"Webhook headers: the value of {name} must be a string")
            value = value.strip()
            if _BAD_VALUE.search(value) or len(value) > HEADER_VALUE_LIMIT:
                raise AlertConfigurationError(
                    f"Webhook headers: the value of {name} must be one line of at most {HEADER_VALUE_LIMIT} characters"
                    " without control characters"
                )
            checked[name] = value
        return checked

    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> WebhookTransport:
        """Build from ``webhook+https://<host>[:<port>]/<path>[?<query>]``: the receiver's URL with
        ``https`` replaced by ``webhook+https``, query included; unsigned, POST, no extra header. The
        whole URL is a secret. A ``#fragment`` is refused (reserved for options).

        Not on the core's ``parse_channel_url``: the receiver's URL passes through whole, its query
        included, and that parser refuses every query name it is not told and gives the host and
        path back decoded.

        Raises:
            AlertConfigurationError: another scheme (``webhook+http`` included), no host, a bad port
                or a fragment; the message shows the expected form, never the URL.
        """
        if isinstance(url, str) and url:
            register_secret(url)  # before anything can fail: no message or log line shows it
        if not isinstance(url, str) or not url.strip():
            raise AlertConfigurationError(f"Webhook URL is required ({URL_FORM})")
        scheme, sep, rest = url.strip().partition("://")
        if not sep or scheme.lower() not in cls.url_schemes:
            hint = " (plain http is refused)" if scheme.lower() == "webhook+http" else ""
            raise AlertConfigurationError(f"Webhook URL must start with webhook+https://{hint} ({URL_FORM})")
        target = "https://" + rest
        register_secret(target)
        try:
            parts = urlsplit(target)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise AlertConfigurationError(f"Webhook URL is not a valid URL ({URL_FORM})") from None
        if not parts.hostname:
            raise AlertConfigurationError(f"Webhook URL has no host ({URL_FORM})")
        if "#" in rest:
            raise AlertConfigurationError(f"Webhook URL must not have a #fragment ({URL_FORM})")
        return cls(target, name=name)

    # -- the message ---------------------------------------------------------------------------
    def webhook_id(self, alert: Alert) -> str:
        """The Standard Webhooks message id of ``alert`` on this channel: ``msg_`` + 32 hex digits.

        The receiver deduplicates on it, so it must be the same on every try of one alert to one
        channel, including a retry by a queued worker in another process that rebuilt the alert
        with ``Alert.from_dict(alert.to_dict())``, and different for anything that is a new
        message. A random id (per try or per process) would defeat the first; ``fingerprint``
        alone the second (it is the same for every repeat of one problem). So it is a hash of:

        * ``correlation_id``: random per alert unless the caller sets it, kept by ``to_dict``;
        * ``created_at``: ISO-8601 with microseconds, kept by ``to_dict``;
        * ``fingerprint`` and ``status``: the firing, acknowledged and resolved events of one
          alert are three messages;
        * the channel name: two channels posting one alert to one receiver are two deliveries.

        Each is taken as ``to_dict()`` gives it (redacted), the form that survives the queue.
        Title, message and metadata are left out on purpose: redaction can change them when the
        worker knows other secrets, and they add nothing to the alert's identity.
        """
        basis = [
            SCHEMA_VERSION,
            self.name,
            redact_text(alert.correlation_id),
            alert.created_at.isoformat(),
            redact_text(alert.fingerprint),
            alert.status,
        ]
        digest = hashlib.sha256(json.dumps(basis, ensure_ascii=True).encode("ascii")).hexdigest()
        return "msg_" + digest[:32]

    def build_payload(self, alert: Alert, webhook_id: str | None = None) -> dict[str, Any]:
        """The alert JSON (version 1) for ``alert``: the redacted alert, whole (``encode_body``
        bounds it to :data:`MAX_BODY_BYTES`)."""
        data: dict[str, Any] = {
            "title": redact_text(alert.title),
            "message": redact_text(alert.message),
            "severity": alert.severity,
            "status": alert.status,
            "source": redact_text(alert.source) if alert.source is not None else None,
            "tags": [redact_text(tag) for tag in alert.tags],
            "metadata": redact_metadata(alert.metadata),
            "fingerprint": redact_text(alert.fingerprint),
            "created_at": alert.created_at.isoformat(),
            "correlation_id": redact_text(alert.correlation_id),
            "request_id": redact_text(alert.request_id) if alert.request_id is not None else None,
            "links": [{"label": redact_text(label), "url": redact_text(url)} for label, url in alert.links],
        }
        if self.format != self.default_formatter:
            data["text"] = redact_text(self.render(alert).text)
        return {
            "version": SCHEMA_VERSION,
            "type": EVENT_TYPES[alert.status],
            "id": webhook_id or self.webhook_id(alert),
            "timestamp": data["created_at"],
            "data": data,
        }

    def encode_body(self, payload: Any) -> tuple[bytes, str]:
        """``payload`` as compact UTF-8 JSON within :data:`MAX_BODY_BYTES`, with ``content_type``.

        An alert over the limit is cut, the same way at every try (so every try sends the same
        bytes): strings and lists shorter and shorter (:data:`_CUTS`) until it fits, with
        ``data.truncated`` true; if even the shortest cut is too long, only the fields that
        identify the alert are kept. A templated body (``bytes`` from :meth:`render_body`) is
        already final and goes as it is."""
        if isinstance(payload, bytes):
            return payload, self.content_type
        body = self._json(payload)
        if len(body) <= MAX_BODY_BYTES or not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            return body, self.content_type
        data = payload["data"]
        for chars, items in _CUTS:
            cut = {**payload, "data": {**_shrink(data, chars, items), "truncated": True}}
            body = self._json(cut)
            if len(body) <= MAX_BODY_BYTES:
                return body, self.content_type
        keep = ("severity", "status", "fingerprint", "created_at", "correlation_id")
        minimal = {key: _shrink(data.get(key), 200, 1) for key in keep}
        minimal.update(title=_cut(str(data.get("title")), 1000), message=_cut(str(data.get("message")), 4000))
        return self._json({**payload, "data": {**minimal, "truncated": True}}), self.content_type

    def render_body(self, alert: Alert) -> bytes:
        """The body ``template`` renders for ``alert``, as the exact bytes sent (and signed).

        The template sees ``alert``: the redacted alert (``title``, ``message``, ``severity``,
        ``source``, ``tags``, ``metadata``, ``status``, ``fingerprint``, ``created_at``, ``links``),
        rendered in the core's sandbox (see :mod:`alert_infra.templates`). Then:

        * **Within** :data:`MAX_BODY_BYTES`, as the alert JSON is: a body over it (or a render the
          sandbox's bounds stopped) is rendered again from the alert with its strings and lists
          cut shorter and shorter (the cuts of :meth:`encode_body`, each string ending in
          ``… [truncated]``), so a huge alert gives a shorter body that is still what the
          template writes, valid JSON included.
        * **JSON content type** (``application/json``, ``*/*+json``): the body must parse as JSON
          (``NaN`` and ``Infinity`` refused); write every value with ``|tojson``. Sent as rendered
          (its whitespace kept), in UTF-8; a lone surrogate in it is sent as a ``\\u`` escape.
        * **Any other content type**: sent as the rendered text in UTF-8, unchecked (a lone
          surrogate becomes ``?``); if even the shortest cut of the alert leaves it over the
          limit, it is cut at a character boundary and ends in ``… [truncated]``.

        Raises:
            AlertConfigurationError: the template failed (variable, sandbox, bound; template and
                line named), the JSON body is not JSON (its line and column in the output), or
                the template alone writes more than :data:`MAX_BODY_BYTES` of JSON. Not retried.
        """
        from alert_infra.templates import MAX_OUTPUT, TRUNCATION_MARKER, alert_context

        template = self.template
        if template is None:
            raise AlertConfigurationError("Webhook: no template to render")
        json_body = is_json_type(self.content_type)
        fields = alert_context(alert)["alert"]
        body = b""
        cuts = (None, *_CUTS)
        for index, cut in enumerate(cuts):
            values = fields if cut is None else _shrink(fields, *cut)
            try:
                text = template.render({"alert": values})
            except AlertConfigurationError as exc:
                # A bound (|tojson of huge metadata over the sandbox's 1 MiB, the time limit): the
                # alert is too big for the template, so cut it; any other failure is the template's.
                if getattr(exc, "refused", False) and index + 1 < len(cuts):
                    continue
                raise
            if len(text) == MAX_OUTPUT and text.endswith(TRUNCATION_MARKER):  # the engine cut it: cut the alert
                if not json_body:
                    body = text.encode("utf-8", "replace")
                continue
            body = self._json_text(text, template.label) if json_body else text.encode("utf-8", "replace")
            if len(body) <= MAX_BODY_BYTES:
                return body
        if json_body:
            raise AlertConfigurationError(
                f"{template.label}: the rendered body is over {MAX_BODY_BYTES} bytes even with the alert's text cut"
                " short: the template itself writes too much"
            )
        return _cut_bytes(body, MAX_BODY_BYTES)

    def _json_text(self, text: str, label: str) -> bytes:
        """A rendered JSON body, checked, as UTF-8 bytes (as rendered; re-encoded only to escape a
        lone surrogate, which UTF-8 cannot carry)."""
        try:
            parsed = json.loads(text, parse_constant=_no_constants)
        except json.JSONDecodeError as exc:
            raise AlertConfigurationError(
                f"{label}: the rendered body is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno} of"
                ' the output); write each value with |tojson, e.g. {"title": {{ alert.title|tojson }}}, or set a'
                " content_type that is not JSON"
            ) from None
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else redact_text(str(exc))
            raise AlertConfigurationError(f"{label}: the rendered body is not valid JSON ({why})") from None
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return self._json(parsed)

    def _json(self, payload: Any) -> bytes:
        """Compact UTF-8 JSON, as the base encodes every JSON body (lone surrogates as ``\\u`` escapes)."""
        return HttpTransport.encode_body(self, payload)[0]

    # -- delivery ------------------------------------------------------------------------------
    def endpoint(self, alert: Alert) -> str:
        return self.url

    def request_headers(self, alert: Alert) -> dict[str, str]:
        return {**self.headers, "webhook-id": self.webhook_id(alert)}

    def sign_request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Stamp this try: ``webhook-timestamp`` now and, with a secret, ``webhook-signature`` over
        ``{webhook-id}.{timestamp}.{body}``. The base calls it at every try, with the exact bytes."""
        timestamp = str(int(self.clock()))
        headers["webhook-timestamp"] = timestamp
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, headers["webhook-id"], timestamp, body)

    def send(self, alert: Alert) -> Any:  # a Sent (BaseTransport.send says str | None: 0.1.x)
        """One try: the alert JSON (or, with a ``template``, the rendered body) to ``url``, stamped
        and signed; the ``webhook-id`` is the outcome's detail and handle (find the delivery in the
        receiver's logs by it)."""
        webhook_id = self.webhook_id(alert)
        payload = self.render_body(alert) if self.template is not None else self.build_payload(alert, webhook_id)
        response = self.call(self.method, self.url, payload, headers={**self.headers, "webhook-id": webhook_id})
        self.check_response(response)
        return Sent(detail=f"webhook-id {webhook_id}", handle={"webhook_id": webhook_id})

    def check_response(self, response: HttpResponse) -> None:
        """2xx delivered; 410: the receiver asked to stop (not retried, said so); the rest by the
        base rules (429 and 5xx retryable with ``Retry-After``; other 4xx and 3xx not)."""
        if 200 <= response.status < 300:
            return
        detail = self.error_detail(response)
        if response.status == 410:
            stop = (
                "the receiver asked to stop sending to this endpoint (410 Gone): not retried; remove this channel"
                " or give it the receiver's new url"
            )
            detail = f"{stop} ({detail})" if detail else stop
            raise_for_status(response, provider=self.provider, detail=detail, retryable=False)
        raise_for_status(response, provider=self.provider, detail=detail)
