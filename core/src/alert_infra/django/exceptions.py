"""Opt-in alerts for unhandled view exceptions (Django's ``got_request_exception`` signal).

::

    ALERT_INFRA = {
        "EXCEPTIONS": {
            "ENABLED": True,       # off by default
            "SEVERITY": "error",
            "DEDUP_WINDOW": 300,   # the same error (class, view, raising line) alerts once per window
            "RATE": 10, "PER": 60, # and at most RATE exception alerts per PER seconds in all
            "CHANNELS": None,      # channel names (default: DEFAULT_CHANNELS, else all)
            "IGNORE": ["django.http.Http404", "django.core.exceptions.PermissionDenied"],
            "TAGS": ["django", "exception"],
        },
    }

An error storm becomes one alert: de-duplication and the throttle run through the dispatcher's
own admission step, on its state (shared by every process when ``STATE`` is a Redis URL), in
the request's thread; delivery runs on a background thread, so the error response is never held
up by a provider (see :func:`report_exception`). The alert carries the exception's class, its
redacted message and the last frames' file, line and function (never local variables), and the
request's safe metadata (see :func:`~alert_infra.django.request_metadata`). It never raises into
the request.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from django.core.signals import got_request_exception  # type: ignore[import-untyped,import-not-found,unused-ignore]

from .._lifecycle import ProcessSingleton
from ..alert import Alert
from . import _deliver
from .conf import build_dispatcher, get_alert_infra_settings
from .request import request_metadata

__all__ = ["DEFAULT_IGNORE", "connect", "disconnect", "exception_alert", "flush", "report_exception"]

DEFAULT_IGNORE = (
    "django.http.Http404",
    "django.http.response.Http404",
    "django.core.exceptions.PermissionDenied",
    "django.core.exceptions.SuspiciousOperation",
)
_logger = logging.getLogger("alert_infra.django")
_UID = "alert_infra.django.exceptions"


def _options() -> dict[str, Any]:
    block = get_alert_infra_settings().get("EXCEPTIONS") or {}
    return dict(block) if isinstance(block, Mapping) else {}


def _qualname(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def _ignored(exc: BaseException, names: Any) -> bool:
    wanted = set(DEFAULT_IGNORE if names is None else names)
    return any(f"{c.__module__}.{c.__qualname__}" in wanted for c in type(exc).__mro__)


def _where(request: Any) -> str:
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None) or getattr(match, "view_name", None)
    if isinstance(route, str) and route:
        return "/" + route.lstrip("/") if not route.startswith("^") else route
    return "an unresolved URL"


def exception_alert(exc: BaseException, request: Any = None, options: Mapping[str, Any] | None = None) -> Any:
    """The :class:`~alert_infra.Alert` for an unhandled exception of a view."""
    # the first exception alert only: alert_infra.logging (its handler) stays out of start-up
    from ..logging import _summarise_exception

    options = options or {}
    where = _where(request) if request is not None else "a request"
    method = getattr(request, "method", None) or ""
    title = f"{type(exc).__name__} in {method + ' ' if isinstance(method, str) and method else ''}{where}"
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    location = f"{last.tb_frame.f_code.co_filename}:{last.tb_lineno}" if last is not None else ""
    fingerprint = hashlib.sha256(f"{_qualname(exc)}\0{where}\0{location}".encode("utf-8", "replace")).hexdigest()[:32]
    metadata: dict[str, Any] = {"exception": _qualname(exc)}
    if request is not None:
        metadata["request"] = request_metadata(request)
    tags = options.get("TAGS", ("django", "exception"))
    return Alert(
        title,
        _summarise_exception(exc),
        str(options.get("SEVERITY") or "error"),
        source="django",
        tags=tuple(tags) if not isinstance(tags, str) else (tags,),
        metadata=metadata,
        request_id=metadata.get("request", {}).get("request_id"),
        fingerprint=fingerprint,
    )


def report_exception(exc: BaseException, request: Any = None) -> Any:
    """Alert about ``exc`` if ``EXCEPTIONS`` is enabled and its policy admits it.

    The alert is built and admitted (de-duplication, throttle) in the caller's thread, which
    holds the request and the traceback; it is delivered on a background thread (the bounded
    queue of :class:`~alert_infra.django.handlers.AlertHandler`), so a slow or hanging
    provider never delays the error response. :func:`flush` waits for it.

    Returns the queued :class:`~alert_infra.Alert`, or ``None`` when nothing was queued
    (disabled, ignored, de-duplicated, throttled, or the queue full). Never raises.
    """
    try:
        options = _options()
        if not options.get("ENABLED") or _ignored(exc, options.get("IGNORE")):
            return None
        # the first reported exception only: the dispatcher stays out of Django's start-up
        from ..dispatcher import Route

        alert = exception_alert(exc, request, options)
        rate = options.get("RATE", 10)
        # One budget for every exception alert (de-duplication handles the same error).
        throttle = {"rate": rate, "per": options.get("PER", 60), "alert_rate": 0} if rate else None
        window = options.get("DEDUP_WINDOW", 300)
        policy = Route(throttle=throttle, dedup_window=window or None)
        if policy.admits and build_dispatcher().admit(_ADMISSION, policy, alert) is not None:
            return None
        return alert if _handler().submit(alert, options.get("CHANNELS")) else None
    except Exception as error:  # noqa: BLE001 - never break the error path of a request
        _logger.error("alert for an unhandled exception was not sent: %s", type(error).__name__)
        return None


def flush(timeout: float | None = None) -> int:
    """Wait until every queued exception alert was delivered (at most ``timeout`` seconds,
    default the handler's ``flush_timeout`` of 5 s); the number still pending."""
    handler = _HANDLER.peek()
    if handler is None:
        return 0
    return int(handler.wait(time.monotonic() + (handler.flush_timeout if timeout is None else timeout)))


_ADMISSION = "django-exceptions"
_HANDLER = ProcessSingleton(lambda: _queue_class()())


def _handler() -> Any:
    """The process's one delivery queue for exception alerts (fork-safe: the core handler
    starts empty in a forked child, and the lock that guards its creation is replaced).

    A closed one is replaced: ``logging.config.dictConfig()`` (Django's ``LOGGING`` setup, or
    any library reconfiguring logging later) closes every handler the process ever made, this
    one included, and exception alerts must not stop for good when that happens."""
    return _HANDLER.get(stale=lambda handler: handler._closed)


def _queue_class() -> Any:
    from .handlers import AlertHandler  # the first reported exception only: handlers loads alert_infra.logging

    class _ExceptionAlerts(AlertHandler):  # type: ignore[misc,valid-type,unused-ignore]
        """The handler's bounded queue, thread, flush at exit and fork safety, carrying alerts
        admitted already (its own de-duplication and throttle are off)."""

        def __init__(self) -> None:
            super().__init__("ERROR", dedup_window=0, rate=0)

        def submit(self, alert: Any, channels: Any) -> bool:
            record = logging.LogRecord("django.request", logging.ERROR, __file__, 0, alert.title, None, None)
            record.__dict__["alert_infra"] = (alert, channels)
            before = self.dropped
            self.handle(record)
            return self.dropped == before

        def wait(self, deadline: float) -> int:
            return int(self._wait(deadline)) if self._thread is not None else 0

        def _deliver(self, record: logging.LogRecord) -> None:
            alert, channels = record.__dict__["alert_infra"]
            _deliver(alert, channels, get_alert_infra_settings())
            self.dispatched += 1

    return _ExceptionAlerts


def _receiver(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    exc = sys.exc_info()[1]
    if exc is not None:
        report_exception(exc, request)


def connect() -> None:
    """Connect to ``got_request_exception`` (done by the app's ``ready()``; idempotent)."""
    got_request_exception.connect(_receiver, dispatch_uid=_UID)


def disconnect() -> None:
    got_request_exception.disconnect(dispatch_uid=_UID)
