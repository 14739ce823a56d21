"""Compatibility namespace: ``feature_flag_infra.django`` is an old name of :mod:`alert_infra.django`.

``from feature_flag_infra.django import send_alert`` gives the very same objects.
"""

from __future__ import annotations

from alert_infra.django import (
    DjangoEmailTransport,
    build_async_dispatcher,
    build_dispatcher,
    get_alert_infra_settings,
    request_metadata,
    reset,
    send_alert,
)

__all__ = [
    "DjangoEmailTransport",
    "build_async_dispatcher",
    "build_dispatcher",
    "get_alert_infra_settings",
    "request_metadata",
    "reset",
    "send_alert",
]
