"""Django integration: ``send_alert`` and friends configured from ``settings.ALERT_INFRA``.

The 0.1.x API, unchanged::

    from alert_infra.django import send_alert

    result = send_alert(title="Payment failed", message="Provider returned 503", request=request)

Add ``"alert_infra.django"`` to ``INSTALLED_APPS`` for the system checks (``manage.py check``),
the ``sendtestalert`` management command, Celery task autodiscovery and the opt-in alerts for
unhandled view exceptions. See ``docs/guide/django.md`` for every setting.

``import alert_infra`` never imports this package (nor Django).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..alert import Alert
from ..exceptions import AlertConfigurationError
from ..result import ChannelOutcome, DeliveryResult
from .conf import (
    build_async_dispatcher,
    build_dispatcher,
    connect_signals,
    get_alert_infra_settings,
    is_django_tasks,
    reset,
)
from .request import request_metadata
from .transports import DjangoEmailTransport

__all__ = [
    "DjangoEmailTransport",
    "build_async_dispatcher",
    "build_dispatcher",
    "get_alert_infra_settings",
    "request_metadata",
    "reset",
    "send_alert",
]

connect_signals()


def send_alert(
    *,
    title: str,
    message: str,
    severity: str | None = None,
    source: str | None = None,
    tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    request: Any | None = None,
    request_id: str | None = None,
    channels: Iterable[str] | str | None = None,
    **fields: Any,
) -> DeliveryResult:
    """Send an alert with the channels configured in ``settings.ALERT_INFRA`` (0.1.x signature).

    Args:
        title, message, severity, source, tags, metadata: the :class:`~alert_infra.Alert`'s
            fields; ``severity`` defaults to ``ALERT_INFRA["DEFAULT_SEVERITY"]``.
        request: a Django request: its safe metadata (see :func:`request_metadata`) goes to
            ``metadata["request"]`` and its request id to the alert's ``request_id``.
        request_id: the request id when there is no ``request`` (or it has none).
        channels: channel names (default: ``DEFAULT_CHANNELS``, else all). New in 0.2.
        fields: other ``Alert`` arguments (``fingerprint``, ``links``, ``status``). New in 0.2.

    Returns:
        the :class:`~alert_infra.DeliveryResult`: empty when ``ENABLED`` is False; with
        ``ASYNC["ENABLED"]``, ``sent == ("celery",)`` (``("django.tasks",)``) once enqueued.

    Raises:
        AlertValidationError: an invalid title, message or severity.
        AlertConfigurationError: ``ALERT_INFRA`` is wrong as a whole (``manage.py check``
            lists why), or ``ASYNC`` with ``FAIL_SILENTLY = False`` cannot enqueue.
    """
    cfg = get_alert_infra_settings()
    merged: dict[str, Any] = dict(metadata or {})
    found_id = None
    if request is not None:
        request_meta = request_metadata(request)
        merged["request"] = request_meta
        found_id = request_meta.get("request_id")
    alert = Alert(
        title=title,
        message=message,
        severity=severity or cfg.get("DEFAULT_SEVERITY") or "error",
        source=source,
        tags=tuple(tags) if not isinstance(tags, str) else (tags,),
        metadata=merged,
        request_id=request_id if request_id is not None else found_id,
        redact_sensitive_data=bool(cfg.get("REDACT_SENSITIVE_DATA", True)),
        **fields,
    )
    return _deliver(alert, channels, cfg)


def _deliver(alert: Any, channels: Any, cfg: Mapping[str, Any]) -> DeliveryResult:
    """The one delivery step of :func:`send_alert` and of exception alerts: nothing when
    disabled, the queue with ``ASYNC``, else the dispatcher of the settings."""
    if not cfg.get("ENABLED", True):
        return DeliveryResult()
    asynchronous = cfg.get("ASYNC") or {}
    if isinstance(asynchronous, Mapping) and asynchronous.get("ENABLED"):
        return _enqueue(alert, channels, asynchronous)
    result: DeliveryResult = build_dispatcher().send(alert, channels)
    return result


def _enqueue(alert: Any, channels: Any, options: Mapping[str, Any]) -> DeliveryResult:
    """Queued delivery (Celery, or Django's task framework); with ``FAIL_SILENTLY`` (the default) a
    missing Celery or task framework is a failed result."""
    try:
        dispatcher = build_async_dispatcher()
    except AlertConfigurationError as exc:
        if options.get("FAIL_SILENTLY", True) is False:
            raise
        name = "django.tasks" if is_django_tasks(options) else "celery"
        return DeliveryResult.from_outcomes(
            [ChannelOutcome(name, "failed", error=type(exc).__name__, retryable=False, reason=str(exc))]
        )
    result: DeliveryResult = dispatcher.send(alert, channels)
    return result
