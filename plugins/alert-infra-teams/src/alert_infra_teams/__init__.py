"""Microsoft Teams (Workflows webhook) channel for alert-infra (transport type ``teams``).

Installing this distribution registers the entry point ``teams`` in the group
``alert_infra``; alert-infra imports this module only when a channel of type
``teams`` is used (or plugins are listed).
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._limits import BODY_LIMIT, escape_card_text, unescape_card_text
from ._version import __version__
from .transport import TeamsTransport

__all__ = ["BODY_LIMIT", "TeamsTransport", "__version__", "escape_card_text", "unescape_card_text"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(TeamsTransport)
