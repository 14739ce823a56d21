"""PagerDuty Events API v2 channel for alert-infra (transport type ``pagerduty``).

Installing this distribution registers the entry point ``pagerduty`` in the
group ``alert_infra``; alert-infra imports this module only when a channel of
type ``pagerduty`` is used (or plugins are listed).
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__
from .transport import EVENTS_API_URL, PagerDutyTransport

__all__ = ["EVENTS_API_URL", "PagerDutyTransport", "__version__"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(PagerDutyTransport)
