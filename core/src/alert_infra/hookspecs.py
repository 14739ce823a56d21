"""Hook specifications for alert-infra plugins, and the markers.

A plugin is a module (or any object) with functions decorated by
:data:`hookimpl`, published through an entry point in the group
``alert_infra`` named after the transport type it provides::

    # pyproject.toml
    [project.entry-points.alert_infra]
    pigeon = "alert_infra_pigeon"

    # alert_infra_pigeon.py
    from alert_infra import hookimpl

    @hookimpl
    def alert_infra_register_transports(register):
        register(PigeonTransport)

Hooks are called with keyword arguments, and an implementation may accept any
subset of a hook's arguments, so hooks can gain arguments without breaking
plugins. Every module that defines hook implementations should start with
``from __future__ import annotations`` (pluggy reads the signature; annotations
naming types imported only under ``TYPE_CHECKING`` would otherwise fail on
Python 3.14 with older pluggy).

The plugin host calls each implementation itself, one plugin at a time, so a
failing plugin is reported with its name and never stops the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar, cast

import pluggy

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .alert import Alert
    from .plugins import FormatterRegistrar, RedactorRegistrar, TransportRegistrar
    from .result import DeliveryResult

__all__ = ["PROJECT", "hookimpl", "hookspec"]

#: The pluggy project name and the entry-point group.
PROJECT = "alert_infra"

_F = TypeVar("_F", bound=Callable[..., Any])

#: Marker for hook specifications (used by this module only).
hookspec = cast(Callable[[_F], _F], pluggy.HookspecMarker(PROJECT))

#: Marker to be imported and used in plugins: ``from alert_infra import hookimpl``.
#: Options such as ``@hookimpl(tryfirst=True)`` work as in pluggy.
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- registration (called once per plugin, when the plugin is loaded) ---------------------


@hookspec
def alert_infra_register_transports(register: TransportRegistrar) -> None:
    """Register the transport classes this plugin provides.

    Called once per plugin, when the plugin is loaded: on first use of one of
    its types (lazy discovery), when plugins are listed, or when it is
    registered directly with :func:`alert_infra.register_plugin`.

    :param register: call ``register(cls)`` for each transport class. ``cls.name``
        is the type users write in channel configuration (``type = "slack"``);
        a channel is built as ``cls(name=<channel name>, **options)``.
        ``cls.secret_fields`` (optional) names the options whose values are
        secrets; they are masked everywhere.
    :raises DuplicateTransportError: (reported, not raised to you) if another
        plugin already registered the same type name; the type is then refused
        for both, naming both distributions, rather than chosen by install order.

    .. versionadded:: 0.2
    """


@hookspec
def alert_infra_register_redactors(register: RedactorRegistrar) -> None:
    """Add secret key names and text patterns to the redactor.

    Called once per plugin, when the plugin is loaded. Additive: the core
    redactor always runs as well and cannot be removed.

    :param register: call ``register(keys=(...), patterns=(...))``. ``keys`` are
        words or phrases (``"ssn"``, ``"card number"``) matched against metadata
        keys by the rule in :mod:`alert_infra.security`; ``patterns`` are regular
        expressions (strings or compiled) whose matches are masked in any text.

    .. versionadded:: 0.2
    """


@hookspec
def alert_infra_register_formatters(register: FormatterRegistrar) -> None:
    """Register named formatters that channels can choose with ``format = "<name>"``.

    Called once per plugin, when the plugin is loaded (or when a channel asks
    for a formatter name nobody has registered yet, which loads all plugins).

    :param register: call ``register(name, formatter)`` where ``formatter`` is a
        callable ``formatter(alert) -> RenderedAlert``. Names are global; a name
        registered twice is refused for both plugins, naming both.

    .. versionadded:: 0.2
    """


# -- observation (called for every dispatch) -----------------------------------------------


@hookspec
def alert_infra_after_dispatch(alert: Alert, result: DeliveryResult) -> Awaitable[None] | None:
    """Observe a finished dispatch: audit trails, metrics, notifications of failure.

    Called once per dispatch after every selected channel has finished (or
    timed out), from :meth:`AlertDispatcher.send` and
    :meth:`AlertDispatcher.asend`, on every loaded plugin. The alert is
    redacted; the result holds per-channel outcomes.

    Each implementation runs on its own: an exception is logged with the
    plugin's name and never reaches the caller, the other implementations or
    delivery. The return value is ignored, except that an awaitable is
    awaited (by ``asend`` directly; by ``send`` on the running event loop of
    the calling thread if there is one, else to completion).

    :param alert: the alert as dispatched, with every redaction rule applied.
    :param result: the :class:`~alert_infra.DeliveryResult` of this dispatch.

    .. versionadded:: 0.2
    """
