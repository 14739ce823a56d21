"""The audit-event dispatcher protocol: alerts from audit and compliance systems.

An audit trail (of logins, permission changes, data exports...) that wants to
raise alerts depends on a tiny protocol, not on alert-infra::

    class AlertDispatcherProtocol(Protocol):
        async def send_alert(self, event, *, severity, channel=None): ...

:class:`EventAlertDispatcher` implements it on an
:class:`~alert_infra.AlertDispatcher`: it turns the event (a mapping, an object
with ``to_dict()``, a dataclass, or any object's public attributes) into an
:class:`~alert_infra.Alert` and delivers it to the named channel, or to the
dispatcher's default channels. :class:`NoopAlertDispatcher` implements it by
remembering the events: for tests, and for deployments with alerting off.

How an event becomes an alert:

* title: its ``title`` or ``summary``, else "Audit event: <action>" from
  ``action``, ``event_type``, ``type`` or ``name``;
* message: its ``message`` or ``description``, else its fields, one per line;
* source: its ``source`` or ``service``, else the dispatcher's ``source``;
* tags: the event's ``tags`` plus the dispatcher's; correlation id from ``id``
  or ``event_id``; every field goes to ``metadata`` (redacted as always);
* severity: ``info``/``warning``/``error``/``critical`` or the usual audit
  words (``low``, ``medium``, ``high``, ``fatal``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ._api import get_default_dispatcher
from .alert import Alert, Severity
from .exceptions import AlertValidationError
from .result import DeliveryResult

__all__ = ["AlertDispatcherProtocol", "EventAlertDispatcher", "NoopAlertDispatcher", "event_to_alert"]

_SEVERITY_WORDS = {
    "debug": "info",
    "trace": "info",
    "notice": "info",
    "low": "info",
    "informational": "info",
    "medium": "warning",
    "moderate": "warning",
    "warn": "warning",
    "high": "error",
    "err": "error",
    "severe": "critical",
    "fatal": "critical",
    "emergency": "critical",
    "alert": "critical",
    "crit": "critical",
}


@runtime_checkable
class AlertDispatcherProtocol(Protocol):
    """What an audit system needs from an alert dispatcher."""

    async def send_alert(self, event: Any, *, severity: str, channel: str | None = None) -> Any: ...


def _as_mapping(event: Any) -> dict[str, Any]:
    if isinstance(event, Mapping):
        return dict(event)
    to_dict = getattr(event, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, Mapping):
            return dict(data)
    import dataclasses  # a dataclass event only: dataclasses (and inspect) cost ~20 ms to import

    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return dataclasses.asdict(event)
    try:
        attributes = dict(vars(event))
    except TypeError:  # no __dict__: a __slots__ class, or not an event at all (a number, a string)
        slots = [n for cls in type(event).__mro__ for n in getattr(cls, "__slots__", ()) if isinstance(n, str)]
        attributes = {name: getattr(event, name) for name in slots if hasattr(event, name)}
    data = {k: v for k, v in attributes.items() if not k.startswith("_")}
    if not data:
        raise AlertValidationError(f"cannot read an audit event of type {type(event).__name__}: it has no fields")
    return data


def _severity(value: Any) -> str:
    if isinstance(value, Severity):
        return value.value
    text = str(value).strip().lower()
    return _SEVERITY_WORDS.get(text, text)


def _first(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def event_to_alert(event: Any, *, severity: Any, source: str | None = None, tags: tuple[str, ...] = ()) -> Alert:
    """The :class:`~alert_infra.Alert` for an audit ``event`` (see the module docstring)."""
    data = _as_mapping(event)
    action = _first(data, "action", "event_type", "type", "name", "event")
    title = _first(data, "title", "summary") or (f"Audit event: {action}" if action else "Audit event")
    message = _first(data, "message", "description")
    if message is None:
        message = "\n".join(f"{key}: {value}" for key, value in data.items()) or title
    event_tags = data.get("tags")
    all_tags = tuple(event_tags) if isinstance(event_tags, (list, tuple, set, frozenset)) else ()
    correlation = _first(data, "id", "event_id", "correlation_id")
    return Alert(
        title,
        message,
        _severity(severity),
        source=_first(data, "source", "service") or source,
        tags=tuple(dict.fromkeys((*all_tags, *tags))),
        metadata=data,
        correlation_id=correlation,
    )


class EventAlertDispatcher:
    """:class:`AlertDispatcherProtocol` on an :class:`~alert_infra.AlertDispatcher`.

    Args:
        dispatcher: where alerts go (default: the process-wide dispatcher of
            :func:`alert_infra.send_alert`, from the configuration found).
        source: the source of alerts whose event names none (default ``"audit"``).
        tags: tags added to every alert.
    """

    def __init__(self, dispatcher: Any = None, *, source: str = "audit", tags: tuple[str, ...] = ()) -> None:
        self._dispatcher = dispatcher
        self.source = source
        self.tags = tuple(tags)

    @property
    def dispatcher(self) -> Any:
        if self._dispatcher is None:
            self._dispatcher = get_default_dispatcher()
        return self._dispatcher

    async def send_alert(self, event: Any, *, severity: Any, channel: str | None = None) -> DeliveryResult:
        """Turn ``event`` into an alert and deliver it to ``channel`` (or the default channels).

        Raises:
            AlertValidationError: the event cannot be read or the severity is unknown.
        """
        alert = event_to_alert(event, severity=severity, source=self.source, tags=self.tags)
        result: DeliveryResult = await self.dispatcher.asend(alert, [channel] if channel else None)
        return result


class NoopAlertDispatcher:
    """:class:`AlertDispatcherProtocol` that delivers nothing and remembers what it was given."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, str, str | None]] = []

    async def send_alert(self, event: Any, *, severity: Any, channel: str | None = None) -> None:
        self.events.append((event, _severity(severity), channel))
