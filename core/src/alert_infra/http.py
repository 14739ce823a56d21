"""The HTTP layer shared by HTTP channel plugins (Slack, Telegram, PagerDuty, email APIs).

Not imported by ``import alert_infra``; ``requests`` is a dependency of the
plugins that use this module, not of the core.

What it gives a transport:

* :class:`HttpChannel`: one ``requests.Session`` per transport (connection and
  TLS reuse), connect/read timeouts, redirects refused, TLS verified against the
  system trust store (``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` are honoured).
  0.1.x's ``http_client`` injection point still works: any object with
  ``post(url, *, json, headers=None, timeout)``.
* Classification: :func:`raise_for_status` turns a response into nothing
  (success), :class:`~alert_infra.RetryableAlertTransportError` (429, 5xx,
  network problems; with ``retry_after``) or
  :class:`~alert_infra.NonRetryableAlertTransportError` (other 4xx, 3xx).
* :func:`parse_retry_after` reads ``Retry-After`` as seconds or an HTTP date.
* Secrecy: exceptions are built from the status and the provider's short error
  code only and raised ``from None``: a ``requests`` exception's text holds the
  full URL (webhook secret, bot token), so it is never passed on, not even as
  ``__cause__``. A logging filter masks configured secrets in the request lines
  urllib3 logs at DEBUG.
"""

from __future__ import annotations

import logging
import threading
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Mapping

from .exceptions import AlertConfigurationError, NonRetryableAlertTransportError, RetryableAlertTransportError
from .security import redact_text

if TYPE_CHECKING:
    import requests

__all__ = [
    "HttpChannel",
    "HttpClient",
    "HttpResponse",
    "RedactingFilter",
    "install_log_redaction",
    "parse_retry_after",
    "raise_for_status",
    "validate_https_url",
]

USER_AGENT = "alert-infra"
#: Loggers of the HTTP stack whose records can contain request URLs.
HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "urllib3.poolmanager")


class HttpClient:  # pragma: no cover - documentation of the protocol
    """0.1.x's injection point: any object with this ``post`` method."""

    def post(self, url: str, *, json: Any, headers: Mapping[str, str] | None = None, timeout: float) -> Any: ...


class HttpResponse:
    """The parts of a response a transport needs (also built from injected clients' returns)."""

    __slots__ = ("status", "headers", "text")

    def __init__(self, status: int, headers: Mapping[str, str] | None = None, text: str = "") -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.text = text

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not JSON."""
        import json

        try:
            return json.loads(self.text) if self.text else None
        except ValueError:
            return None

    def __repr__(self) -> str:
        return f"HttpResponse(status={self.status})"


def validate_https_url(url: object, *, field: str) -> str:
    """Return ``url`` if it is an absolute https URL, else raise a configuration error naming ``field``.

    The message never contains the URL (it is usually the secret).
    """
    from urllib.parse import urlsplit

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
        from datetime import timezone

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
        detail: the provider's short error code or message (never a URL).
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
        message += f": {redact_text(str(detail))[:300]}"
    if 300 <= status < 400:
        message += " (a redirect: check the configured URL)"
    if retryable:
        raise RetryableAlertTransportError(message, retry_after=retry_after)
    raise NonRetryableAlertTransportError(message)


class RedactingFilter(logging.Filter):
    """A logging filter that masks configured secrets and secret-shaped values in records."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to break
            return True
        masked = redact_text(message)
        if masked != message:
            record.msg = masked
            record.args = ()
        return True


_FILTER = RedactingFilter()
_INSTALL_LOCK = threading.Lock()
_installed = False


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to the HTTP stack's loggers (idempotent)."""
    global _installed
    if _installed:
        return
    with _INSTALL_LOCK:
        if not _installed:
            for name in HTTP_LOGGERS:
                logging.getLogger(name).addFilter(_FILTER)
            _installed = True


def _network_error(exc: BaseException, provider: str) -> RetryableAlertTransportError | NonRetryableAlertTransportError:
    """A secret-free error for a ``requests`` exception (whose text contains the URL)."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        # An untrusted or mismatched certificate does not fix itself between retries.
        return NonRetryableAlertTransportError(
            f"{provider}: TLS error: certificate not trusted or handshake failed ({type(exc).__name__})"
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        what = "connect timeout"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        what = "read timeout (the request may have been delivered)"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        what = "connection failed"
    else:
        what = "request failed"
    return RetryableAlertTransportError(f"{provider}: {what} ({type(exc).__name__})")


class HttpChannel:
    """A JSON-over-HTTPS client for one transport: a pooled session, or an injected 0.1.x client.

    Args:
        provider: name used in error messages (``"Slack"``).
        timeout: seconds; used as both the connect and the read timeout.
        http_client: 0.1.x injection point; when given, no session is created.
    """

    def __init__(self, provider: str, *, timeout: float = 5.0, http_client: Any = None) -> None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise AlertConfigurationError(f"{provider} timeout must be a positive number of seconds")
        self.provider = provider
        self.timeout = float(timeout)
        self.http_client = http_client
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    def _get_session(self) -> requests.Session:
        session = self._session
        if session is None:
            with self._lock:
                session = self._session
                if session is None:
                    import requests

                    install_log_redaction()
                    session = requests.Session()
                    session.headers["User-Agent"] = USER_AGENT
                    self._session = session
        return session

    def post_json(self, url: str, payload: Any, *, headers: Mapping[str, str] | None = None) -> HttpResponse:
        """POST ``payload`` as JSON; return the response (any status) or raise a retryable network error."""
        if self.http_client is not None:
            return self._post_injected(url, payload, headers)
        import requests

        session = self._get_session()
        try:
            response = session.post(
                url,
                json=payload,
                headers=dict(headers or {}),
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
            )
            text = response.text
        except requests.exceptions.RequestException as exc:
            error = _network_error(exc, self.provider)
        else:
            return HttpResponse(response.status_code, response.headers, text)
        raise error from None

    def _post_injected(self, url: str, payload: Any, headers: Mapping[str, str] | None) -> HttpResponse:
        try:
            result = self.http_client.post(url, json=payload, headers=dict(headers or {}), timeout=self.timeout)
        except (RetryableAlertTransportError, NonRetryableAlertTransportError):
            raise
        except Exception as exc:  # noqa: BLE001 - an injected client may raise anything
            error = RetryableAlertTransportError(f"{self.provider}: request failed ({type(exc).__name__})")
        else:
            return _coerce_response(result)
        raise error from None

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()


def _coerce_response(result: Any) -> HttpResponse:
    """Accept what 0.1.x-style injected clients return: None, a status int, or a response object."""
    if result is None:
        return HttpResponse(200)
    if isinstance(result, HttpResponse):
        return result
    if isinstance(result, int) and not isinstance(result, bool):
        return HttpResponse(result)
    status = getattr(result, "status_code", None) or getattr(result, "status", None)
    if isinstance(status, int):
        headers = getattr(result, "headers", None) or {}
        text = getattr(result, "text", "")
        return HttpResponse(status, dict(headers), text if isinstance(text, str) else "")
    return HttpResponse(200)
