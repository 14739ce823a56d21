"""Telegram Bot API channel for alert-infra.

This distribution is discovered by alert-infra through its entry points in the
group ``alert_infra`` (``telegram``). The transport classes arrive with the issue
that implements them; until then the plugin loads, is listed by
``alert_infra.list_plugins()``, and a channel of its type fails with a
``PluginLoadError`` saying that the plugin registers no such type yet.
"""

from __future__ import annotations

from typing import Any

from alert_infra import hookimpl

from ._version import __version__

__all__ = ["__version__"]


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    """Register this plugin's transport classes (none yet: see the module docstring)."""
