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
own admission step, on its state (shared by every process when ``STATE`` is a Redis URL). The
alert carries the exception's class, its redacted message and the last frames' file, line and
function (never local variables), and the request's safe metadata (see
:func:`~alert_infra.django.request_metadata`). It never raises into the request.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_IGNORE", "connect", "disconnect", "exception_alert", "report_exception"]

DEFAULT_IGNORE = (
    "django.http.Http404",
    "django.http.response.Http404",
    "django.core.exceptions.PermissionDenied",
    "django.core.exceptions.SuspiciousOperation",
)
_logger = logging.getLogger("alert_infra.django")
_UID = "alert_infra.django.exceptions"


def _options() -> dict[str, Any]:
    from .conf import get_alert_infra_settings

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
    from ..alert import Alert
    from ..logging import _summarise_exception
    from .request import request_metadata

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

    Returns the :class:`~alert_infra.DeliveryResult`, or ``None`` when nothing was sent
    (disabled, ignored, de-duplicated or throttled). Never raises.
    """
    try:
        options = _options()
        if not options.get("ENABLED") or _ignored(exc, options.get("IGNORE")):
            return None
        from ..dispatcher import Route
        from . import build_dispatcher, send_alert

        alert = exception_alert(exc, request, options)
        rate = options.get("RATE", 10)
        # One budget for every exception alert (de-duplication handles the same error).
        throttle = {"rate": rate, "per": options.get("PER", 60), "alert_rate": 0} if rate else None
        window = options.get("DEDUP_WINDOW", 300)
        policy = Route(throttle=throttle, dedup_window=window or None)
        if policy.admits:
            skip = build_dispatcher().admit("django-exceptions", policy, alert)
            if skip is not None:
                return None
        return send_alert(
            title=alert.title,
            message=alert.message,
            severity=alert.severity,
            source=alert.source,
            tags=alert.tags,
            metadata=alert.metadata,
            request_id=alert.request_id,
            channels=options.get("CHANNELS"),
            fingerprint=alert.fingerprint,
        )
    except Exception as error:  # noqa: BLE001 - never break the error path of a request
        _logger.error("alert for an unhandled exception was not sent: %s", type(error).__name__)
        return None


def _receiver(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
    exc = sys.exc_info()[1]
    if exc is not None:
        report_exception(exc, request)


def connect() -> None:
    """Connect to ``got_request_exception`` (done by the app's ``ready()``; idempotent)."""
    from django.core.signals import got_request_exception  # type: ignore[import-untyped,import-not-found,unused-ignore]

    got_request_exception.connect(_receiver, dispatch_uid=_UID)


def disconnect() -> None:
    from django.core.signals import got_request_exception  # type: ignore[import-untyped,import-not-found,unused-ignore]

    got_request_exception.disconnect(dispatch_uid=_UID)
