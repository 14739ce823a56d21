"""Telegram Bot API channel for alert-infra (transport type ``telegram``).

Installing this distribution registers the entry point ``telegram`` in the
group ``alert_infra``; alert-infra imports this module only when a channel of
type ``telegram`` is used (or plugins are listed).
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__
from .transport import TelegramBotTransport, escape_html, unescape_html, visible_length

__all__ = ["TelegramBotTransport", "__version__", "escape_html", "unescape_html", "visible_length"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(TelegramBotTransport)
