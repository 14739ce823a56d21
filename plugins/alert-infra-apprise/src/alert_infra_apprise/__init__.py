"""Apprise bridge for alert-infra (transport type ``apprise``).

Installing this distribution registers the entry point ``apprise`` in the group
``alert_infra``; alert-infra imports this module only when a channel of type ``apprise``
is used (or plugins are listed). apprise itself (~200-300 ms to import) is imported only
when an ``apprise`` channel is built or :meth:`AppriseTransport.handles_url` is asked.
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__
from .transport import AppriseTransport

__all__ = ["AppriseTransport", "__version__"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(AppriseTransport)
