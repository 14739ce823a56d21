"""The HTTP layer shared by HTTP channel plugins (Slack, Telegram, PagerDuty, email APIs).

Not imported by ``import alert_infra``; ``requests`` is a dependency of the
plugins that use this module, not of the core.

What it gives a transport:

* :class:`HttpChannel`: one ``requests.Session`` per transport (connection and
  TLS reuse), redirects refused, TLS verified against the trust store
  (``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` / ``SSL_CERT_FILE``: :data:`CA_VARIABLES`; a
  certificate it does not trust is a non-retryable error that names them and the one in use,
  logged once per session on ``alert_infra.http``), and two bounds
  that hold whatever the server does:

  - a **total deadline per request** (default: the channel's ``timeout``) covering
    connect, TLS handshake, upload, headers and the whole body. A server that
    trickles one byte a second, stalls its TLS handshake or never answers costs
    the deadline and no more: each socket operation waits at most the deadline,
    and one shared watchdog thread shuts the socket down (``shutdown(SHUT_RDWR)``)
    when the deadline passes, so even a trickled handshake or header ends. The
    connection is then discarded (never returned to the pool) and the error is
    :class:`~alert_infra.AlertTransportTimeoutError` ("no complete answer within
    Ns", a retryable error, no URL). Name resolution (``getaddrinfo``) cannot be
    interrupted: a hung resolver is bounded by the dispatcher's per-channel
    timeout, not by this deadline.
  - a **cap on the response body** (:data:`MAX_RESPONSE_BYTES`, 64 KiB, per channel
    ``max_response_bytes=``): the body is read in chunks up to the cap; beyond it
    the connection is closed and the response carries only what was read
    (``HttpResponse.truncated`` is true). An endless or 1 GB body costs at most
    the cap in memory. (Headers are bounded by ``http.client``: 100 lines of at
    most 64 KiB.)

  0.1.x's ``http_client`` injection point still works: any object with
  ``post(url, *, json, headers=None, timeout)``, called exactly as before (with
  ``timeout=`` the channel's timeout); such a client enforces its own bounds.
* Classification: :func:`raise_for_status` turns a response into nothing
  (success) or the error class of its status, each carrying ``status``:
  :class:`~alert_infra.exceptions.AlertRateLimitedError` (429, with ``retry_after``),
  :class:`~alert_infra.exceptions.AlertServerError` (5xx), ``AlertTransportTimeoutError`` (408),
  both retryable, or :class:`~alert_infra.exceptions.AlertClientError` (other 4xx, 3xx, a 2xx the
  provider's body calls a failure), not retryable. Network problems become
  :class:`~alert_infra.exceptions.AlertConnectionError`, ``AlertTransportTimeoutError`` or
  :class:`~alert_infra.exceptions.AlertTLSError`. Their class attribute ``failure_class`` is what
  results, the audit trail and the metrics call the failure (``timeout``, ``rate_limited``, ...).
* :func:`parse_retry_after` reads ``Retry-After`` as seconds or an HTTP date.
* Secrecy: exceptions are built from the status and the provider's short error
  code only and raised ``from None``: a ``requests`` exception's text holds the
  full URL (webhook secret, bot token), so it is never passed on, not even as
  ``__cause__``. Provider text is always *redacted first, then truncated*
  (:func:`redact_and_truncate`; cutting first would leave the head of a token
  that no longer matches any pattern). A logging filter masks configured
  secrets in the request lines urllib3 logs at DEBUG.

Speed: what ``requests`` recomputes on every ``Session.post`` is resolved once per
session: the proxies from the environment (``HTTPS_PROXY``/``NO_PROXY``…, once per
URL), the CA bundle, the headers, the JSON encoder (one compact
``json.JSONEncoder``; the body is sent as UTF-8 bytes with our own
``Content-Type``). The session has ``trust_env = False`` and is never asked to
look at ``os.environ`` or ``~/.netrc`` again, so **a change of those variables is
seen by sessions created after it** (a new transport, or a forked child), not by
a running one.

Fork: a forked child never uses the parent's pooled connections (TLS state is
per process; two processes writing one socket corrupt both): it forgets the
session without closing it or shutting anything down, and opens its own on first
use. (When the forgotten session is collected, only the child's copies of the file
descriptors are released; no byte is written, so the parent's connections go on.)
An :class:`HttpChannel` that is garbage collected without :meth:`HttpChannel.close`
closes its session.
"""

from __future__ import annotations

import os
import time
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Mapping
from urllib.parse import urlencode, urlsplit

# The engine: how a request is made (sessions, the deadline watchdog, the adapter, the body cap).
# Its public names are part of this module's API and re-exported here, where plugins import them.
from ._http_channel import (
    CA_VARIABLES,
    CANONICAL_HEADERS,
    MAX_RESPONSE_BYTES,
    METHODS,
    HttpChannel,
    HttpClient,
    HttpResponse,
    RedactingFilter,
    check_method,
    encode_json,
    install_log_redaction,
)
from ._http_channel import HTTP_LOGGERS as HTTP_LOGGERS
from ._http_channel import MAX_RESPONSE_BYTES_LIMIT as MAX_RESPONSE_BYTES_LIMIT
from ._http_channel import READ_CHUNK as READ_CHUNK
from ._http_channel import URL_CACHE_SIZE as URL_CACHE_SIZE
from ._http_channel import USER_AGENT as USER_AGENT
from .exceptions import (
    AlertClientError,
    AlertConfigurationError,
    AlertRateLimitedError,
    AlertServerError,
    AlertTransportTimeoutError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from .security import redact_and_cut, register_secret
from .transports import BaseTransport

__all__ = [
    "BODY_FORMATS",
    "CA_VARIABLES",
    "DETAIL_LIMIT",
    "MAX_RESPONSE_BYTES",
    "METHODS",
    "HttpChannel",
    "HttpClient",
    "HttpResponse",
    "HttpTransport",
    "RedactingFilter",
    "encode_form",
    "error_detail",
    "install_log_redaction",
    "parse_retry_after",
    "raise_for_status",
    "redact_and_truncate",
    "status_label",
    "validate_https_url",
]

#: Characters of provider text kept in an error message (after redaction): see :func:`redact_and_truncate`.
DETAIL_LIMIT = 300


def redact_and_truncate(text: object, limit: int = DETAIL_LIMIT) -> str:
    """``text`` redacted on its *full* length, then cut to ``limit`` characters (``…`` marks a cut).

    Use it for every piece of provider text that goes into an error message or a log
    line. Cutting first is unsafe: a token cut at 30 characters no longer matches any
    redaction pattern, and its first 30 characters would survive.
    """
    return redact_and_cut(text, limit)


def validate_https_url(url: object, *, field: str) -> str:
    """Return ``url`` if it is an absolute https URL, else raise a configuration error naming ``field``.

    The message never contains the URL (it is usually the secret).
    """
    if not isinstance(url, str) or not url.strip():
        raise AlertConfigurationError(f"{field} is required")
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise AlertConfigurationError(f"{field} is not a valid URL") from None
    if parts.scheme != "https" or not parts.hostname:
        raise AlertConfigurationError(f"{field} must be an absolute https:// URL")
    if any(c in url for c in "\r\n\t "):
        raise AlertConfigurationError(f"{field} must not contain whitespace")
    return url


def parse_retry_after(value: object, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); ``None`` if unusable."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0.0, float(value)) if value == value else None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def raise_for_status(
    response: HttpResponse,
    *,
    provider: str,
    detail: str | None = None,
    retryable: bool | None = None,
    retry_after: float | None = None,
) -> None:
    """Raise the right transport error for a non-success response (2xx returns).

    Args:
        provider: named in the message (``"Slack"``).
        detail: the provider's short error code or message (never a URL); it is
            redacted in full, then cut to :data:`DETAIL_LIMIT` characters. Pass
            the provider's text whole: cutting it yourself first defeats redaction
            (or cut it with :func:`redact_and_truncate`).
        retryable: overrides the status-based decision when the provider's
            error code says otherwise.
        retry_after: overrides the ``Retry-After`` header.
    """
    status = response.status
    if 200 <= status < 300 and retryable is None:
        return
    if retry_after is None:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    if retryable is None:
        retryable = status == 429 or status >= 500 or status in (408, 425)
    message = f"{provider} answered HTTP {status}"
    if detail:
        message += f": {redact_and_truncate(detail, DETAIL_LIMIT)}"
    if 300 <= status < 400:
        message += " (a redirect: check the configured URL)"
    raise _status_error(message, status, retryable, retry_after)


def _status_error(
    message: str, status: int, retryable: bool, retry_after: float | None
) -> RetryableAlertTransportError | NonRetryableAlertTransportError:
    """The exception class that says what the status means (see ``FAILURE_CLASSES`` in
    :mod:`alert_infra.exceptions`): 429 rate limited, 5xx server error, 408 timeout, any other
    status client error. A provider's code that overrides the status's retryability (a 4xx it
    says to retry, a 5xx it says not to) gets the plain retryable or non-retryable class, whose
    failure class is ``other``: the classes of the status families each have one retryability."""
    if retryable:
        if status == 429:
            return AlertRateLimitedError(message, retry_after=retry_after, status=status)
        if status >= 500:
            return AlertServerError(message, retry_after=retry_after, status=status)
        if status == 408:
            return AlertTransportTimeoutError(message, retry_after=retry_after, status=status)
        return RetryableAlertTransportError(message, retry_after=retry_after)
    if status < 500 and status != 429:
        return AlertClientError(message, status=status)
    return NonRetryableAlertTransportError(message)


#: What :meth:`HttpTransport.encode_body` knows: JSON, an HTML form, or bytes the transport made itself.
BODY_FORMATS = ("json", "form", "raw")


def encode_form(fields: Any) -> bytes:
    """``fields`` (a mapping, or ``(name, value)`` pairs for a repeated name) as an
    ``application/x-www-form-urlencoded`` body, UTF-8, ``None`` values left out."""
    pairs = fields.items() if isinstance(fields, Mapping) else fields
    return urlencode([(str(k), str(v)) for k, v in pairs if v is not None]).encode("ascii")


# -- the base class of HTTP transports ---------------------------------------------------------

#: Keys of a provider's JSON error body read by :meth:`HttpTransport.error_detail`, in order.
ERROR_KEYS = ("error", "code", "name", "message", "description", "detail", "title", "status")
#: A plain-text body kept as an error detail only when it looks like a short provider code.
_CODE_SHAPE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"


def status_label(alert: Any) -> str:
    """``"ERROR"`` for a firing alert, else its status: ``"RESOLVED"``, ``"ACKNOWLEDGED"``."""
    status = getattr(alert, "status", "firing")
    return str(alert.severity).upper() if status == "firing" else str(status).upper()


def error_detail(response: HttpResponse, keys: tuple[str, ...] = ERROR_KEYS) -> str | None:
    """The provider's error code and message from ``response``, whole (redact it before cutting:
    :func:`raise_for_status` does), or ``None``.

    A JSON object gives the string values of ``keys`` (first two found) and up to three entries
    of an ``errors`` list (strings, or objects with a ``message``); a plain-text body is kept
    only when it is a short code such as ``invalid_token`` (never an HTML page).
    """
    body = response.json()
    if isinstance(body, dict):
        parts: list[str] = []
        for key in keys:
            value = body.get(key)
            if isinstance(value, str) and value.strip() and value.strip() not in parts:
                parts.append(value.strip())
            if len(parts) == 2:
                break
        errors = body.get("errors")
        if isinstance(errors, list):
            for entry in errors[:3]:
                if isinstance(entry, dict):
                    entry = entry.get("message") or entry.get("detail")
                if isinstance(entry, str) and entry.strip():
                    parts.append(entry.strip())
        return "; ".join(parts) or None
    text = response.text.strip()
    if 0 < len(text) <= 64 and all(c in _CODE_SHAPE for c in text):
        return text
    return None


class HttpTransport(BaseTransport):
    """The base of a transport that sends JSON (or a form, or its own bytes) to an HTTPS API: subclass
    it, write the payload and, if the provider needs them, the response rules. Everything else is done here.

    What a subclass writes (see ``docs/plugins/writing-a-transport.md``)::

        class HookTransport(HttpTransport):
            name = "hook"                     # the type name in configuration
            provider = "Hook"                 # named in error messages
            secret_fields = ("url",)          # masked everywhere
            env_vars = {"url": "ALERT_HOOK_URL"}  # what from_env() reads

            def __init__(self, url, *, timeout=5.0, http_client=None, name=None, format=None):
                super().__init__(timeout=timeout, http_client=http_client, name=name, format=format)
                self.url = self.secret_option("url", url, https=True)

            def endpoint(self, alert):
                return self.url

            def build_payload(self, alert):
                return {"text": self.render(alert).text}

    Keep every option an explicit keyword of ``__init__``: configuration checks a channel's
    options against the constructor's signature (unknown and missing options are named there).

    What the base does:

    * :meth:`secret_option` registers a secret with the redactor **before** checking it, so no
      error message (yours, ours, configuration's) can show it; with ``https=True`` it is also
      checked as an absolute https URL and the cleaned URL is returned (see
      :func:`validate_https_url`). :meth:`url_option` does the same for a URL that is not secret.
    * ``timeout``/``http_client``: one :class:`HttpChannel` (``self.http``), checked here
      (a bad ``timeout`` is a configuration error naming ``timeout``).
    * :meth:`from_env` builds the transport from the variables declared in ``env_vars``.
    * :meth:`send` sends :meth:`build_payload` to :meth:`endpoint` with :meth:`request_headers`
      (by :attr:`method`, default ``POST``; encoded by :attr:`body_format`: ``"json"``, ``"form"`` or
      ``"raw"``; signed over the exact bytes by :meth:`sign_request` at every try), then hands the
      response to :meth:`check_response`, whose default accepts 2xx and raises
      :func:`raise_for_status` with :func:`error_detail` otherwise (429/5xx retryable with
      ``retry_after`` from ``Retry-After``, other 4xx not).
    * :meth:`close` closes the channel's connections (``BaseTransport.close()`` does nothing).
    * ``repr`` shows the class and the channel name only.
    """

    name = "http"
    #: The provider named in error messages (default: the class name).
    provider: ClassVar[str] = ""
    #: Option name -> environment variable, read by :meth:`from_env`.
    env_vars: ClassVar[Mapping[str, str]] = {}
    #: The HTTP method of :meth:`send` (``POST``, ``PUT``, ``PATCH``, ``DELETE``); per alert: :meth:`request_method`.
    method: str = "POST"
    #: How :meth:`build_payload`'s value is encoded: ``"json"``, ``"form"`` or ``"raw"`` (see :meth:`encode_body`).
    body_format: ClassVar[str] = "json"
    #: The ``Content-Type`` of a ``"raw"`` body.
    content_type: str = "application/octet-stream"

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        http_client: Any = None,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name=name, format=format)
        provider = self.provider or type(self).__name__
        # A bad timeout: "Slack timeout must be ..." (the option named, the value never quoted).
        self.http = HttpChannel(provider, timeout=timeout, http_client=http_client)
        self.timeout = self.http.timeout
        self.http_client = http_client

    @property
    def connected_send_time(self) -> float | None:
        """The longest one send can take on a connection already open, in seconds: the HTTP
        layer's total deadline (a watchdog ends the request when it passes). The dispatcher may
        then send in its caller's thread, without a thread hand-off; a send that needs a new
        connection (whose DNS lookup nothing can bound) is handed to a worker thread before it
        starts. ``None`` with an injected 0.1.x ``http_client`` (its time is its own)."""
        http = self.http
        return http.deadline if http.http_client is None else None

    # 0.1.x-style transports kept the channel as ``_http``.
    @property
    def _http(self) -> HttpChannel:
        return self.http

    # -- options -------------------------------------------------------------------------------
    def secret_option(self, field: str, value: object, *, https: bool = False) -> str:
        """Register ``value`` as a secret of this transport, then check it; return it cleaned
        (stripped) and store it as ``self.<field>``.

        Raises:
            AlertConfigurationError: ``"<Provider> <field> is required"`` (or, with ``https``,
                "must be an absolute https:// URL"): it names the option, never the value.
        """
        if isinstance(value, str) and value:
            register_secret(value, owner=self)
            if value.strip() != value and value.strip():
                register_secret(value.strip(), owner=self)
        where = f"{self.provider or type(self).__name__} {field}"
        if https:
            cleaned = validate_https_url(value, field=where)
        elif not isinstance(value, str) or not value.strip():
            raise AlertConfigurationError(f"{where} is required")
        else:
            cleaned = value.strip()
        setattr(self, field, cleaned)
        return cleaned

    def url_option(self, field: str, value: object) -> str:
        """``value`` checked as an absolute https URL (an error names ``field``); trailing ``/`` kept."""
        return validate_https_url(value, field=f"{self.provider or type(self).__name__} {field}")

    @classmethod
    def from_env(cls, *, env: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        """Build from environment variables: ``env`` (default :attr:`env_vars`) maps each option
        to the variable that holds it; ``kwargs`` are passed on as they are.

        Raises:
            AlertConfigurationError: ``"<VARIABLE> is required"`` for an unset or empty variable.
        """
        values: dict[str, Any] = {}
        for option, variable in (cls.env_vars if env is None else env).items():
            value = os.environ.get(variable)
            if not value:
                raise AlertConfigurationError(f"{variable} is required")
            values[option] = value
        return cls(**values, **kwargs)

    # -- delivery ------------------------------------------------------------------------------
    def endpoint(self, alert: Any) -> str:
        """The URL ``alert`` is posted to (override; it may hold the secret: never log it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement endpoint(alert)")

    def build_payload(self, alert: Any) -> Any:
        """The JSON body for ``alert`` (override)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_payload(alert)")

    def request_headers(self, alert: Any) -> Mapping[str, str] | None:
        """Extra request headers (``Authorization``…); the default sends none."""
        return None

    def request_method(self, alert: Any) -> str:
        """The HTTP method for ``alert`` (default :attr:`method`: ``POST``)."""
        return self.method

    def encode_body(self, payload: Any) -> tuple[bytes, str]:
        """``payload`` as the exact request bytes and their ``Content-Type``, by :attr:`body_format`:
        ``"json"`` (compact UTF-8), ``"form"`` (a mapping or pairs, URL-encoded) or ``"raw"`` (``bytes``,
        or ``str`` sent as UTF-8, with :attr:`content_type`)."""
        form = self.body_format
        provider = self.provider or type(self).__name__
        if form == "json":
            return encode_json(payload, provider), "application/json"
        if form == "form":
            return encode_form(payload), "application/x-www-form-urlencoded"
        if form == "raw":
            if isinstance(payload, str):
                payload = payload.encode("utf-8", "replace")
            if not isinstance(payload, (bytes, bytearray)):
                raise NonRetryableAlertTransportError(f"{provider}: a raw body must be bytes or str")
            return bytes(payload), self.content_type
        raise NonRetryableAlertTransportError(
            f"{provider}: unknown body_format {str(form)[:20]!r}: expected one of {', '.join(BODY_FORMATS)}"
        )

    def sign_request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Add what authenticates these exact bytes to ``headers`` (a signature, a timestamp). Called
        once per try, just before the bytes go out, so every retry is signed anew (the default does
        nothing). ``url`` may hold a secret: never put it in an error."""

    def call(
        self,
        method: str,
        url: str,
        payload: Any,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """One request: ``payload`` encoded by :meth:`encode_body`, signed by :meth:`sign_request`, sent
        with the channel's deadline and body cap; the response whatever its status (check it with
        :meth:`check_response`). :meth:`send` uses it, and so can :meth:`update` or any other request a
        transport makes (an edit by ``PATCH``, a cancel)."""
        if (
            self.http_client is not None
            and method.upper() == "POST"
            and self.body_format == "json"
            and type(self).sign_request is HttpTransport.sign_request
        ):
            # 0.1.x's injection point is called exactly as before: post(url, json=payload, ...).
            return self.http.post_json(url, payload, headers=headers)
        method = check_method(method, self.provider or type(self).__name__)
        if method == "GET":
            body, final = b"", {}
        else:
            body, content_type = self.encode_body(payload)
            final = {"Content-Type": content_type}
        if headers:
            for key, value in headers.items():
                final[CANONICAL_HEADERS.get(key.lower(), key)] = value
        self.sign_request(method, url, body, final)
        return self.http.request(method, url, body, headers=final)

    def send(self, alert: Any) -> Any:
        """Send the payload (:meth:`call` with :meth:`request_method`, :meth:`endpoint`,
        :meth:`build_payload` and :meth:`request_headers`), then :meth:`check_response` (which raises
        for a failure; what it returns, a detail or :class:`~alert_infra.Sent`, is the result)."""
        return self.check_response(
            self.call(
                self.request_method(alert),
                self.endpoint(alert),
                self.build_payload(alert),
                headers=self.request_headers(alert),
            )
        )

    def check_response(self, response: HttpResponse) -> Any:
        """Accept 2xx; raise the classified error otherwise (override for a provider's own rules,
        e.g. ``{"ok": false}`` with 200, or an error code that is retryable)."""
        if 200 <= response.status < 300:
            return None
        raise_for_status(response, provider=self.provider or type(self).__name__, detail=self.error_detail(response))
        return None  # pragma: no cover - raise_for_status raised

    def error_detail(self, response: HttpResponse) -> str | None:
        """The provider's error text for a message: :func:`error_detail` (override to read other keys)."""
        return error_detail(response)

    def close(self) -> None:
        """Close the channel's pooled connections (a later send opens new ones)."""
        http = self.__dict__.get("http")
        if http is not None:
            http.close()
