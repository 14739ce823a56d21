"""``AppriseTransport``: one alert-infra channel per apprise URL (the bridge to apprise's services)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Callable, ClassVar
from urllib.parse import parse_qsl, unquote

from alert_infra import (
    AlertConfigurationError,
    AlertTransportTimeoutError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from alert_infra.formatting import one_line
from alert_infra.security import register_secret
from alert_infra.transports import BaseTransport

from . import _guard
from ._limits import fit

if TYPE_CHECKING:
    from alert_infra import Alert

__all__ = ["DEFAULT_TIMEOUT", "PREFIX", "AppriseTransport"]

#: The prefix of our own URL form: ``apprise+<any apprise URL>``.
PREFIX = "apprise+"
#: Seconds: the channel's timeout when none is configured (apprise may make a few requests).
DEFAULT_TIMEOUT = 10.0
#: The longest timeout accepted (the dispatcher's own bound).
MAX_TIMEOUT = 3600.0
#: Pieces of the URL shorter than this are not registered as secrets on their own (masking
#: "json" or "8080" everywhere would garble logs); the whole URL always is.
MIN_PIECE = 6
#: apprise's query parameters that are settings, not secrets (their values are not registered).
SETTINGS = frozenset(
    {"format", "overflow", "emojis", "verify", "rto", "cto", "store", "tz", "method", "priority", "lang", "mode"}
)
#: HTTP statuses that no retry fixes (the core's rule table: 3xx and 4xx but 408/425/429).
_RETRYABLE_4XX = frozenset({408, 425, 429})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_NOTIFY_TYPES = {"info": "info", "warning": "warning", "error": "failure", "critical": "failure"}


def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


def _secret_pieces(url: str) -> set[str]:
    """The URL and every part of it a service could print alone: user, password, host, path
    and its segments, query values (apprise's settings excepted), raw and unquoted."""
    pieces = {url}
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.split("#", 1)[0]
    head, _, query = rest.partition("?")
    netloc, slash, path = head.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        pieces.update((userinfo, *userinfo.split(":", 1)))
    pieces.update((hostport, *hostport.split(":")))
    if slash:
        pieces.update(("/" + path, path, *path.split("/")))
    if query:
        pieces.add(query)
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key.lower() not in SETTINGS:
                pieces.add(value)
    pieces.update([unquote(piece) for piece in pieces])
    return {piece for piece in pieces if len(piece) >= MIN_PIECE}


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise AlertConfigurationError("apprise timeout must be a number of seconds, such as 10")
    if not (0 < timeout <= MAX_TIMEOUT) or not math.isfinite(timeout):
        raise AlertConfigurationError(f"apprise timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds")
    return float(timeout)


def _apprise_knows(apprise: Any, scheme: str) -> bool:
    manager = getattr(getattr(apprise, "apprise", None), "N_MGR", None)  # apprise >= 1.6
    if manager is not None:
        return scheme in manager
    schemas = getattr(getattr(apprise, "plugins", None), "SCHEMA_MAP", {})  # older apprise
    return scheme in schemas


class AppriseTransport(BaseTransport):
    """Deliver alerts to any service apprise knows, through one apprise URL per channel.

    apprise is imported when a channel is built (it costs ~200-300 ms), never when this
    plugin is loaded. Each ``send`` renders the alert with the channel's formatter, cuts the
    title and body to the service's own limits (see ``_limits.py``), and calls apprise's
    ``notify`` **in the calling thread**: under a dispatcher that is one of the dispatcher's
    worker threads, and the dispatcher's per-channel timeout bounds the wait (see
    :attr:`max_send_time`). Our retries, throttle, de-duplication and audit wrap the call;
    apprise's own retries are not used.

    Outcomes: apprise's per-service result (``AppriseResult``/``NotifyResult`` on apprise
    2.3+, ``True``/``False``/``None`` before) becomes ``sent``; a ``TIMEOUT`` becomes
    :class:`~alert_infra.AlertTransportTimeoutError`; "nothing to notify" is non-retryable;
    a failure is retryable unless every HTTP status the service reported in its warnings
    (``error=NNN``) is a permanent one (3xx, or 4xx other than 408/425/429): then it is
    non-retryable. apprise never exposes ``Retry-After``, so ``retry_after`` is never set.

    Args:
        url: any apprise URL (``ntfy://topic``, ``tgram://token/chat``, ``jsons://host/path``),
            optionally written ``apprise+<url>``. The whole URL is a secret: it and every
            piece of it (user, password, host, path segments, query values) are masked
            everywhere, and no error quotes it.
        timeout: the channel's time budget in seconds (default 10): apprise's connect and
            read timeouts (``cto``/``rto``) are lowered to it, so no socket operation waits
            longer; the dispatcher's timeout for the channel bounds the whole send.
        name: the channel name (default ``apprise``).
        format: the formatter that renders the alert (default ``default``).
    """

    name = "apprise"
    secret_fields: ClassVar[tuple[str, ...]] = ("url",)
    #: Our URL form for one-off sends (``alert-infra send --to apprise+ntfy://topic``).
    url_schemes: ClassVar[tuple[str, ...]] = ("apprise",)
    url_form: ClassVar[str] = "apprise+<an apprise URL> (apprise+ntfy://topic), or an apprise URL no other type takes"
    #: Not declared (``None``): apprise's time is not bounded inside this call (a hung name
    #: lookup, a server that trickles bytes, several requests for one notification), so the
    #: dispatcher always runs this channel in a worker thread it can stop waiting for.
    max_send_time: ClassVar[float | None] = None

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        name: str | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name=name, format=format)
        self.url = url
        if isinstance(url, str):  # registered before anything looks at it: no message can quote it
            for piece in _secret_pieces(url.strip()):
                register_secret(piece, owner=self)
        self.timeout = _check_timeout(timeout)
        inner = self._check_url(url)
        self._build(inner)

    # -- building ----------------------------------------------------------------------------
    @staticmethod
    def _check_url(url: object) -> str:
        if not isinstance(url, str) or not url.strip():
            raise AlertConfigurationError("apprise url is required: an apprise URL such as ntfy://topic")
        url = url.strip()
        if url.lower().startswith(PREFIX):
            url = url[len(PREFIX) :]
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
            raise AlertConfigurationError("apprise url must not contain whitespace or control characters")
        if _scheme(url) is None:
            raise AlertConfigurationError(
                "apprise url must be an apprise URL, scheme://… (such as ntfy://topic or jsons://host/path)"
            )
        return url

    def _build(self, url: str) -> None:
        _guard.install()
        state = _guard.calls
        state.depth += 1  # apprise logs while it parses the URL: drop and mask as in send()
        try:
            import apprise

            service = apprise.Apprise.instantiate(url, asset=self._asset(apprise), suppress_exceptions=True)
        finally:
            state.depth -= 1
        scheme = _scheme(url) or ""
        if service is None:
            if not _apprise_knows(apprise, scheme):
                raise AlertConfigurationError(
                    f"apprise url: apprise has no service for the scheme {scheme!r}: see apprise's list of"
                    " services (the URL is not shown: it is a secret)"
                )
            raise AlertConfigurationError(
                f"apprise url: apprise cannot use this {scheme}:// URL (a part is missing or invalid, or the"
                " service needs a package that is not installed); check its form in apprise's documentation"
                " (the URL is not shown: it is a secret)"
            )
        # apprise paces each service by sleeping before every request (5.5 s since the last one
        # unless the service says otherwise, per channel object, unsynchronised between threads):
        # that sleep would eat the channel's timeout and make alerts late, and it bounds no burst.
        # The channel's own `throttle` policy is the pacing (README); a provider's explicit
        # "wait N s" that a service honours is kept.
        if getattr(service, "request_rate_per_sec", 0):
            service.request_rate_per_sec = 0
        for attribute in ("socket_connect_timeout", "socket_read_timeout"):
            current = getattr(service, attribute, None)
            if isinstance(current, (int, float)) and current > 0:
                setattr(service, attribute, min(float(current), self.timeout))
        bundle = apprise.Apprise(asset=service.asset)
        bundle.add(service)
        self._service = service
        self._apprise = bundle
        self.service = one_line(str(getattr(service, "service_name", "") or scheme))[:60] or "apprise"
        types = apprise.NotifyType
        self._types = {
            "info": types.INFO,
            "warning": types.WARNING,
            "failure": types.FAILURE,
            "success": types.SUCCESS,
        }
        self._text = apprise.NotifyFormat.TEXT
        query = url.partition("?")[2]
        self._cut = "overflow" not in {key.lower() for key, _ in parse_qsl(query, keep_blank_values=True)}
        self._title_maxlen = int(getattr(service, "title_maxlen", 0) or 0)
        self._body_maxlen = int(getattr(service, "body_maxlen", 0) or 0)
        if getattr(service, "overflow_amalgamate_title", False) and self._title_maxlen > 0:
            self._shared = True  # title and body share body_maxlen
        else:
            self._shared = False
        self._measure = self._measure_for(service, self._text)

    @staticmethod
    def _asset(apprise: Any) -> Any:
        """Services run in the calling thread (no apprise pool, no apprise deadline: ours bound it)."""
        try:  # apprise 2.3+: service_timeout=0 keeps notify() off apprise's shared thread pool
            return apprise.AppriseAsset(async_mode=False, service_timeout=0)
        except (TypeError, AttributeError):
            return apprise.AppriseAsset(async_mode=False)

    @staticmethod
    def _measure_for(service: Any, text: Any) -> Callable[[str], int]:
        """How apprise will measure our plain text for this service: after its conversion."""
        resolve = getattr(service, "resolve_format", None)
        target = resolve(text) if callable(resolve) else getattr(service, "notify_format", text)
        if isinstance(target, (tuple, list)):
            target = text if text in target else target[0]
        if target == text:
            return len
        try:
            from apprise.conversion import convert_between
        except ImportError:  # pragma: no cover - every supported apprise has it
            return len
        convert: Any = convert_between  # untyped in apprise

        def measure(value: str) -> int:
            return len(convert(text, target, value))

        return measure

    # -- one-off sends by URL ---------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, name: str | None = None) -> AppriseTransport:
        """Build from ``apprise+<apprise URL>`` (``apprise+ntfy://alerts-7f3k``), or from a bare
        apprise URL whose scheme apprise knows and :meth:`handles_url` accepts.

        Query parameters are apprise's own (``?format=markdown``, ``?cto=3``); the channel's
        ``timeout`` stays the default. Errors are :class:`~alert_infra.AlertConfigurationError`
        naming what is wrong, never quoting the URL.

        Not on the core's ``parse_channel_url``: the URL is apprise's own syntax (any of its ~180
        schemes, its query parameters), handed to apprise whole; apprise parses it.
        """
        if not isinstance(url, str) or not url.strip():
            raise AlertConfigurationError(
                "apprise URL is required: apprise+<an apprise URL>, such as apprise+ntfy://topic"
            )
        url = url.strip()
        if not url.lower().startswith(PREFIX) and not cls.handles_url(url):
            raise AlertConfigurationError(
                "apprise URL must be apprise+<an apprise URL> (such as apprise+ntfy://topic) or an apprise URL whose"
                " scheme apprise knows"
            )
        return cls(url, name=name)

    @classmethod
    def handles_url(cls, url: str) -> bool:
        """Whether apprise can take ``url``: ``apprise+<url>``, or a bare URL whose scheme is one
        of apprise's services. Never raises; imports apprise (once, ~200-300 ms).

        For the core's ``alert-infra send --to``: call it only for a scheme no installed
        channel type declares in ``url_schemes`` (ours win), then :meth:`from_url`.
        Knowing the scheme does not mean the rest of the URL is valid: :meth:`from_url`
        checks that.
        """
        if not isinstance(url, str):
            return False
        url = url.strip()
        if url.lower().startswith(PREFIX):
            url = url[len(PREFIX) :]
        scheme = _scheme(url)
        if scheme is None:
            return False
        try:
            import apprise
        except ImportError:  # pragma: no cover - apprise is a dependency
            return False
        return _apprise_knows(apprise, scheme)

    # -- delivery ----------------------------------------------------------------------------
    def message(self, alert: Alert) -> tuple[str, str]:
        """The ``(title, body)`` sent for ``alert``: rendered, then cut to the service's limits."""
        rendered = self.render(alert)
        title, body = rendered.subject, rendered.text
        if self._title_maxlen > 0 and body.startswith(title):
            body = body[len(title) :].lstrip("\r\n")  # the title is sent as the title: not twice
        if not self._cut:  # the URL chose apprise's overflow mode (split, truncate): apprise cuts
            return fit(title, body, title_maxlen=self._title_maxlen, body_maxlen=0)
        body_maxlen = self._body_maxlen
        if self._shared and body_maxlen > 0:
            title = fit(title, "", title_maxlen=self._title_maxlen, body_maxlen=0)[0]
            body_maxlen = max(1, body_maxlen - len(title) - 2)
        return fit(title, body, title_maxlen=self._title_maxlen, body_maxlen=body_maxlen, measure=self._measure)

    def send(self, alert: Alert) -> str:
        title, body = self.message(alert)
        kind = "success" if alert.status == "resolved" else _NOTIFY_TYPES.get(alert.severity, "info")
        if alert.status == "acknowledged":
            kind = "info"
        state = _guard.calls
        saved = state.statuses
        statuses: list[int] = []
        state.depth += 1
        state.statuses = statuses
        crashed = None
        try:
            result = self._apprise.notify(body=body, title=title, notify_type=self._types[kind], body_format=self._text)
        except Exception as exc:  # noqa: BLE001 - apprise catches its services' errors; this is apprise's own
            crashed = type(exc).__name__  # raised below, outside this block: no chained exception quotes the URL
        finally:
            state.depth -= 1
            state.statuses = saved
        if crashed is not None:
            raise RetryableAlertTransportError(f"apprise ({self.service}) raised {crashed}")
        try:
            return self._outcome(result, statuses)
        finally:
            close = getattr(result, "close", None)  # apprise 2.3+ results may hold log files
            if callable(close):
                close()

    def _outcome(self, result: Any, statuses: list[int]) -> str:
        status = getattr(result, "status", None)
        if status is not None:  # apprise 2.3+: AppriseResult, one NotifyResult per service
            kind = getattr(status, "name", str(status))
            if kind == "SUCCESS":
                return f"delivered by apprise ({self.service})"
            if kind == "NOMATCH":
                raise NonRetryableAlertTransportError(f"apprise ({self.service}) had no service to notify")
            services = list(getattr(result, "results", ()) or ())
            if kind == "TIMEOUT" or any(getattr(getattr(r, "status", None), "name", "") == "TIMEOUT" for r in services):
                raise AlertTransportTimeoutError(f"apprise ({self.service}) did not finish in time")
            self._failure(statuses)
        if result is True:  # apprise before 2.3
            return f"delivered by apprise ({self.service})"
        if result is None:
            raise NonRetryableAlertTransportError(f"apprise ({self.service}) had no service to notify")
        self._failure(statuses)
        raise AssertionError("unreachable")  # pragma: no cover

    def _failure(self, statuses: list[int]) -> None:
        service = self.service
        if not statuses:
            raise RetryableAlertTransportError(
                f"apprise ({service}) reported a failure without a reason (connection error, timeout or a refusal"
                " apprise does not classify)"
            )
        last = statuses[-1]
        if all(300 <= s < 500 and s not in _RETRYABLE_4XX for s in statuses):
            raise NonRetryableAlertTransportError(f"apprise ({service}): the service answered HTTP {last}")
        raise RetryableAlertTransportError(f"apprise ({service}): the service answered HTTP {last}")

    def close(self) -> None:
        """Nothing to release: apprise opens a connection per request and closes it."""
