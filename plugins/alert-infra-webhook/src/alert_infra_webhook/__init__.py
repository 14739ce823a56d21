"""Generic HTTPS webhook channel for alert-infra (transport type ``webhook``).

Installing this distribution registers the entry point ``webhook`` in the group
``alert_infra``; alert-infra imports this module only when a channel of type
``webhook`` is used (or plugins are listed). Receivers import :func:`verify` from here.
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__
from .signing import WebhookVerificationError, generate_secret, sign, verify
from .transport import EVENT_TYPES, MAX_BODY_BYTES, SCHEMA_VERSION, WebhookTransport

__all__ = [
    "EVENT_TYPES",
    "MAX_BODY_BYTES",
    "SCHEMA_VERSION",
    "WebhookTransport",
    "WebhookVerificationError",
    "__version__",
    "generate_secret",
    "sign",
    "verify",
]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(WebhookTransport)
