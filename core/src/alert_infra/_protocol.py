"""The transport protocol (kept apart: ``typing.Protocol`` is slow to import)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .alert import Alert

__all__ = ["AlertTransport"]


@runtime_checkable
class AlertTransport(Protocol):
    """Protocol implemented by all alert transports (0.1.x)."""

    name: str

    def send(self, alert: Alert) -> None:
        """Send an alert or raise an exception on delivery failure."""
