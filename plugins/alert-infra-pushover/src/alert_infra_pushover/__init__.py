"""Pushover channel for alert-infra (transport type ``pushover``).

Installing this distribution registers the entry point ``pushover`` in the group
``alert_infra``; alert-infra imports this module only when a channel of type ``pushover``
is used (or plugins are listed).
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._limits import MAX_EMERGENCY_EXPIRE, MESSAGE_LIMIT, MIN_EMERGENCY_RETRY, duration_seconds
from ._version import __version__
from .transport import API_URL, PRIORITIES, PushoverTransport

__all__ = [
    "API_URL",
    "MAX_EMERGENCY_EXPIRE",
    "MESSAGE_LIMIT",
    "MIN_EMERGENCY_RETRY",
    "PRIORITIES",
    "PushoverTransport",
    "__version__",
    "duration_seconds",
]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(PushoverTransport)
