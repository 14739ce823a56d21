"""ntfy channel for alert-infra (transport type ``ntfy``).

Installing this distribution registers the entry point ``ntfy`` in the group
``alert_infra``; alert-infra imports this module only when a channel of type ``ntfy``
is used (or plugins are listed).
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__
from .transport import PUBLIC_SERVER, NtfyTransport

__all__ = ["PUBLIC_SERVER", "NtfyTransport", "__version__"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(NtfyTransport)
