"""The built-in plugin: ``noop`` and ``console`` transports, ``default`` and ``compact`` formatters.

Registered like any other plugin (under the name ``builtin``), so it can be
blocked with ``ALERT_INFRA_DISABLE_PLUGINS=builtin``.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    from .transports import ConsoleTransport, NoOpTransport

    register(NoOpTransport)
    register(ConsoleTransport)


@hookimpl
def alert_infra_register_formatters(register: Any) -> None:
    from .formatting import compact_formatter, default_formatter

    register("default", default_formatter)
    register("compact", compact_formatter)
