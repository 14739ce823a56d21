"""The built-in plugin: ``noop`` and ``console`` transports, ``default`` and ``compact`` formatters.

Registered like any other plugin (under the name ``builtin``), so it can be
blocked with ``ALERT_INFRA_DISABLE_PLUGINS=builtin``.
"""

from __future__ import annotations

from typing import Any

from ..formatting import compact_formatter, default_formatter
from ..hookspecs import hookimpl
from ..transports import ConsoleTransport, NoOpTransport


@hookimpl
def alert_infra_register_transports(register: Any) -> None:
    register(NoOpTransport)
    register(ConsoleTransport)


@hookimpl
def alert_infra_register_formatters(register: Any) -> None:
    register("default", default_formatter)
    register("compact", compact_formatter)
