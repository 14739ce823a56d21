"""The plugin host: lazy entry-point discovery, failure isolation and the type registries.

Nothing here is imported by ``import alert_infra``; the host is created on
first use by :func:`get_plugin_host`.

Discovery is lazy. Resolving a transport type ``slack`` looks among the
types already registered (the built-in ``noop`` and ``console`` first), then
loads only the entry points *named* ``slack`` in the group ``alert_infra``. A
full scan of every entry point happens only to list plugins
(:func:`list_plugins`) or to explain an unknown type.

Isolation: a plugin that fails to import, that pluggy refuses (a hook this
core does not know), or whose registration hook raises is recorded with its
distribution, version and the error, logged once, shown by
:func:`list_plugins`, and fails only the channels that need it (with
:class:`~alert_infra.PluginLoadError`). A type name registered twice is
refused with :class:`~alert_infra.DuplicateTransportError` naming both
distributions; built-in types cannot be taken over.

Environment switches:

``ALERT_INFRA_DISABLE_PLUGINS``
    comma-separated entry-point or distribution names never to load
    (``builtin`` blocks the built-in ``noop``/``console``/formatters).
``ALERT_INFRA_PLUGINS``
    comma-separated entry-point names or ``module.path`` values to load when
    the host is created, for plugins that only implement hooks (an audit
    trail) and would otherwise never be loaded by type.
``ALERT_INFRA_STRICT_PLUGINS=1``
    re-raise a plugin's failure at once instead of recording it (for CI).
"""

from __future__ import annotations

from .. import formatting
from .._lifecycle import ProcessSingleton
from ._discovery import GROUP, entry_points
from ._host import PluginHost
from ._host import logger as logger  # the plugin machinery's logger: "alert_infra.plugins"
from ._registry import (
    BUILTIN_NAME,
    FormatterRegistrar,
    PluginRecord,
    RedactorRegistrar,
    TransportRegistrar,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ..formatting import Formatter

__all__ = [
    "BUILTIN_NAME",
    "GROUP",
    "FormatterRegistrar",
    "PluginHost",
    "PluginRecord",
    "RedactorRegistrar",
    "TransportRegistrar",
    "build_transport",
    "entry_points",
    "get_plugin_host",
    "list_plugins",
    "peek_plugin_host",
    "register_plugin",
    "reset_plugin_host",
    "resolve_formatter",
    "unregister_plugin",
]


_HOST = ProcessSingleton(lambda: PluginHost())


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    host: PluginHost = _HOST.get()
    return host


def peek_plugin_host() -> PluginHost | None:
    """The process-wide host if it exists, without creating it."""
    host: PluginHost | None = _HOST.peek()
    return host


def reset_plugin_host(host: PluginHost | None = None) -> None:
    """Forget the process-wide host (tests), or install ``host`` in its place."""
    _HOST.set(host)


def list_plugins(*, include_builtin: bool = False) -> list[dict[str, Any]]:
    """List installed plugins: name, distribution, version, entry points, transport types,
    formatters, hooks, and status (``loaded``/``failed``/``conflict``/``blocked``) with the error.
    """
    return get_plugin_host().list_plugins(include_builtin=include_builtin)


def register_plugin(plugin: object, name: str | None = None) -> PluginRecord:
    """Register a plugin object without packaging it (applications and tests)."""
    return get_plugin_host().register(plugin, name)


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin`."""
    get_plugin_host().unregister(name)


def resolve_formatter(name: str) -> Formatter:
    """The formatter called ``name``; the built-in ones without starting the plugin host."""
    if name in ("default", "compact"):
        return formatting.default_formatter if name == "default" else formatting.compact_formatter
    return get_plugin_host().formatter(name)


def build_transport(type_name: str, channel: str, options: Mapping[str, Any] | None = None) -> Any:
    """Build a channel of ``type_name`` named ``channel`` from an options mapping."""
    return get_plugin_host().build_transport(type_name, channel, options)
