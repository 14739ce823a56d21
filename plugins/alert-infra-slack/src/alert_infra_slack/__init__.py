"""Slack channel for alert-infra (transport type ``slack``): an incoming webhook, or a bot token.

Installing this distribution registers the entry point ``slack`` in the group
``alert_infra``; alert-infra imports this module only when a channel of type
``slack`` is used (or plugins are listed).
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__
from .transport import SlackWebhookTransport, escape_mrkdwn, unescape_mrkdwn

__all__ = ["SlackWebhookTransport", "__version__", "escape_mrkdwn", "unescape_mrkdwn"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(SlackWebhookTransport)
