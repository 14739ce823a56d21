"""Helpers for testing code that sends alerts, and for testing plugins.

* :class:`RecordingTransport` keeps every alert it receives and can be told to
  fail (a given exception, or for the next ``n`` alerts).
* :func:`isolated_plugin_host` swaps in a fresh plugin host (optionally
  without entry points) and restores the previous one afterwards.
* :func:`registered_plugin` registers a plugin object for the duration of a
  ``with`` block.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .transports import BaseTransport

if TYPE_CHECKING:
    from .alert import Alert
    from .plugins import PluginHost, PluginRecord

__all__ = ["RecordingTransport", "isolated_plugin_host", "registered_plugin"]


class RecordingTransport(BaseTransport):
    """An in-memory transport that records alerts and fails on request.

    Args:
        name: the channel name (default ``recording``).
        fail_with: an exception instance raised by every ``send``.
        fail_times: raise ``fail_with`` only for the next ``fail_times`` alerts.
    """

    name = "recording"
    blocking = False

    def __init__(
        self,
        *,
        name: str | None = None,
        fail_with: BaseException | None = None,
        fail_times: int | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name=name, format=format)
        self.alerts: list[Alert] = []
        self.calls = 0
        self.fail_with = fail_with
        self.fail_times = fail_times
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        with self._lock:
            self.calls += 1
            if self.fail_with is not None and (self.fail_times is None or self.fail_times > 0):
                if self.fail_times is not None:
                    self.fail_times -= 1
                raise self.fail_with
            self.alerts.append(alert)


@contextmanager
def isolated_plugin_host(*, load_entry_points: bool = False, builtins: bool = True) -> Iterator[PluginHost]:
    """Use a fresh :class:`~alert_infra.plugins.PluginHost` inside the block, then restore the old one."""
    from . import plugins

    previous = plugins.peek_plugin_host()
    host = plugins.PluginHost(load_entry_points=load_entry_points, builtins=builtins)
    plugins.reset_plugin_host(host)
    try:
        yield host
    finally:
        plugins.reset_plugin_host(previous)


@contextmanager
def registered_plugin(plugin: object, name: str | None = None) -> Iterator[PluginRecord]:
    """Register ``plugin`` with the process-wide host for the block; unregister it after."""
    from .plugins import get_plugin_host

    host = get_plugin_host()
    record = host.register(plugin, name)
    try:
        yield record
    finally:
        host.unregister(record.name)
