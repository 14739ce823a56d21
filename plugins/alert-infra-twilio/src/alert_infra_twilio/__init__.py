"""Twilio SMS channel for alert-infra (transport type ``twilio``).

Installing this distribution registers the entry point ``twilio`` in the group
``alert_infra``; alert-infra imports this module only when a channel of type ``twilio``
is used (or plugins are listed).
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__
from .transport import API_URL, TwilioTransport

__all__ = ["API_URL", "TwilioTransport", "__version__"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(TwilioTransport)
