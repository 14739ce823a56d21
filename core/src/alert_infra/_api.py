"""The one-call API: :func:`send_alert` with a process-wide dispatcher built from the configuration.

Like ``httpx.get()`` beside ``httpx.Client``: the module-level convenience is a thin layer over the
class, and everything it does is also reachable by building an
:class:`~alert_infra.AlertDispatcher` yourself (``AlertDispatcher.from_config()``).
"""

from __future__ import annotations

from ._lifecycle import ProcessSingleton
from .alert import Alert

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from .dispatcher import AlertDispatcher

__all__ = ["get_default_dispatcher", "reset_default_dispatcher", "send_alert"]


def _build_default() -> AlertDispatcher:
    # the first send_alert() only: `from alert_infra import send_alert` loads Alert, not these
    from .config import find_config
    from .dispatcher import AlertDispatcher
    from .transports import ConsoleTransport

    found = find_config()
    return AlertDispatcher.from_config(found[0]) if found else AlertDispatcher([ConsoleTransport()])


#: The dispatcher behind :func:`send_alert`: one per process, built on first use (fork-safe).
_DEFAULT = ProcessSingleton(_build_default)


def get_default_dispatcher() -> AlertDispatcher:
    """The process-wide dispatcher behind :func:`send_alert`, built once (thread-safe).

    From the configuration :func:`~alert_infra.config.find_config` finds; with none at all, a
    single ``console`` channel (standard error), so alerts are never silently dropped.

    Raises:
        AlertConfigurationError: the configuration found is invalid (all problems listed).
    """
    dispatcher: AlertDispatcher = _DEFAULT.get()
    return dispatcher


def reset_default_dispatcher() -> None:
    """Forget the process-wide dispatcher (tests; after changing the configuration)."""
    dispatcher = _DEFAULT.peek()
    _DEFAULT.set(None)
    if dispatcher is not None:
        dispatcher.close()


def send_alert(
    title: str,
    message: str,
    severity: str = "error",
    *,
    channels: Any = None,
    **fields: Any,
) -> Any:
    """Build an :class:`~alert_infra.Alert` and send it with the process-wide dispatcher.

    ``fields`` are the other ``Alert`` arguments (``source``, ``tags``,
    ``metadata``, ``links``, ...). Returns the :class:`~alert_infra.DeliveryResult`.
    Delivery problems never raise; an invalid configuration does (validate it at
    start-up with ``AlertDispatcher.from_config()``).
    """
    return get_default_dispatcher().send(Alert(title, message, severity, **fields), channels)
