"""Discord webhook channel for alert-infra (transport type ``discord``).

Installing this distribution registers the entry point ``discord`` in the group
``alert_infra``; alert-infra imports this module only when a channel of type
``discord`` is used (or plugins are listed).
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._limits import escape_markdown, unescape_markdown
from ._version import __version__
from .transport import DiscordTransport

__all__ = ["DiscordTransport", "__version__", "escape_markdown", "unescape_markdown"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(DiscordTransport)
