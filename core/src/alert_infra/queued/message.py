"""The message of queued delivery, for every engine: built by the sender, checked by the worker.

A message is ``alert`` (the redacted ``Alert.to_dict()``), ``transport_names`` (the channels still
to deliver; ``None``: the worker's default channels), ``async_options`` (the retry settings),
``alert_id`` and ``attempt``. It never holds a credential: the worker builds its channels from its
own configuration.

:func:`check_message` is the first thing a worker does with a message, before anything else
touches it (no ``Alert`` is built, nothing is unpickled or walked recursively): every field is
checked against the bounds the sender enforces (types, sizes, nesting depth), and the retry settings
are capped by the worker's own (a message cannot ask for 10**9 retries 1 ms apart).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._checks import MAX_WINDOW
from ..alert import PAYLOAD_FIELDS, VALID_SEVERITIES
from ..exceptions import AlertInfraError as AlertError
from ..security import guarded_repr

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ..alert import Alert
    from .settings import AsyncAlertConfig

__all__ = [
    "MAX_CHANNELS",
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "MIN_RETRY_BACKOFF",
    "InvalidMessage",
    "Message",
    "build_message",
    "check_message",
]

#: The deepest nesting a message may have (the alert's metadata included).
MAX_DEPTH = 32
#: The largest message, bytes of text in all (strings, keys, numbers counted by their digits).
MAX_MESSAGE_BYTES = 1024 * 1024
#: The most channels one message names.
MAX_CHANNELS = 256
#: The shortest first retry a numeric ``RETRY_BACKOFF`` in a message can ask for, seconds.
MIN_RETRY_BACKOFF = 1.0
#: The most nodes (values) a message may hold.
MAX_NODES = 100_000
_ALERT_KEYS = PAYLOAD_FIELDS  # what Alert.to_dict writes: one list, in alert.py
_OPTION_KEYS = frozenset(("MAX_RETRIES", "RETRY_BACKOFF", "RETRY_BACKOFF_MAX", "RETRY_JITTER"))
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class InvalidMessage(AlertError):
    """A message outside the sender's bounds: dead-lettered, never delivered or retried. The text
    names the field and the bound, never a value."""


@dataclass(frozen=True, repr=False)
class Message:
    """A checked message: what a worker delivers."""

    alert: dict[str, Any]
    transport_names: list[str] | None
    options: dict[str, Any]
    alert_id: str
    attempt: int

    @guarded_repr
    def __repr__(self) -> str:  # never the alert's text: the id, the attempt, the channels
        return f"Message(alert_id={self.alert_id!r}, attempt={self.attempt}, transport_names={self.transport_names!r})"

    def kwargs(self) -> dict[str, Any]:
        """The task keyword arguments (Celery's, Django's)."""
        return {
            "transport_names": self.transport_names,
            "async_options": self.options,
            "alert_id": self.alert_id,
            "attempt": self.attempt,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"alert": self.alert, **self.kwargs()}


def new_alert_id() -> str:
    """A fresh alert id: 32 random hex digits (``uuid4().hex``'s form, without building a UUID)."""
    return os.urandom(16).hex()


def build_message(
    alert: Alert,
    channels: Iterable[str] | None,
    settings: AsyncAlertConfig,
    alert_id: str | None = None,
) -> Message:
    """The message of ``alert`` for the channels named: the redacted ``alert.to_dict()``, the channel
    names, the retry settings, a fresh alert id (unless given) and attempt 1. Never a credential."""
    return Message(
        alert.to_dict(),
        list(channels) if channels else None,
        settings.options(),
        alert_id or new_alert_id(),
        1,
    )


def _walk(value: Any, where: str) -> None:
    """Refuse a structure deeper than :data:`MAX_DEPTH`, larger than :data:`MAX_MESSAGE_BYTES` or
    holding anything but JSON types; iterative (no recursion a hostile depth could exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    size = 0
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise InvalidMessage(f"{where}: nested deeper than {MAX_DEPTH}")
        if nodes > MAX_NODES:
            raise InvalidMessage(f"{where}: more than {MAX_NODES} values")
        if isinstance(item, str):
            size += len(item)
        elif item is None or isinstance(item, bool):
            size += 4
        elif isinstance(item, int):
            if item.bit_length() > 4000:
                raise InvalidMessage(f"{where}: an integer of more than 4000 bits")
            size += 8
        elif isinstance(item, float):
            size += 8
        elif isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise InvalidMessage(f"{where}: a key that is not a string ({type(key).__name__})")
                size += len(key)
                stack.append((sub, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, depth + 1) for sub in item)
        else:
            raise InvalidMessage(f"{where}: a value of type {type(item).__name__}")
        if size > MAX_MESSAGE_BYTES:
            raise InvalidMessage(f"{where}: larger than {MAX_MESSAGE_BYTES} bytes")


def _text(value: Any, where: str, *, optional: bool = False, limit: int = MAX_MESSAGE_BYTES) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidMessage(f"{where}: must be a string of at most {limit} characters, got a {type(value).__name__}")


def check_message(
    alert_payload: Any,
    transport_names: Any = None,
    async_options: Any = None,
    alert_id: Any = None,
    attempt: Any = None,
    *,
    worker: AsyncAlertConfig | None = None,
) -> Message:
    """Check every field of a message against the sender's bounds and cap its retry settings by
    the worker's own (``worker``; default: the defaults). Builds nothing.

    Raises:
        InvalidMessage: naming the field and the bound (never a value).
    """
    from .settings import AsyncAlertConfig  # a message check only: queued.settings loads the audit and outbox modules

    # A worker with settings of its own caps a message's retries by them; one without (a dispatcher
    # factory) by the bounds every sender enforces.
    own = worker if worker is not None else AsyncAlertConfig(max_retries=1000, retry_backoff_max=MAX_WINDOW)
    floor = 0.1 if worker is None else MIN_RETRY_BACKOFF
    if worker is not None and not isinstance(worker.retry_backoff, bool):
        floor = min(floor, float(worker.retry_backoff))
    if not isinstance(alert_payload, dict):
        raise InvalidMessage(f"alert: must be a mapping, got a {type(alert_payload).__name__}")
    _walk(alert_payload, "alert")
    unknown = [k for k in alert_payload if k not in _ALERT_KEYS]
    if unknown:
        raise InvalidMessage(f"alert: {len(unknown)} unknown field(s)")
    _text(alert_payload.get("title"), "alert.title")
    _text(alert_payload.get("message"), "alert.message")
    severity = alert_payload.get("severity", "error")
    if severity is not None and (not isinstance(severity, str) or severity.lower() not in VALID_SEVERITIES):
        raise InvalidMessage("alert.severity: not a known severity")
    for name in ("source", "correlation_id", "request_id", "fingerprint", "created_at", "status"):
        _text(alert_payload.get(name), f"alert.{name}", optional=True, limit=4096)
    tags = alert_payload.get("tags")
    if tags is not None and (not isinstance(tags, list) or len(tags) > 1000):
        raise InvalidMessage("alert.tags: must be a list of at most 1000 strings")
    metadata = alert_payload.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidMessage(f"alert.metadata: must be a mapping, got a {type(metadata).__name__}")
    links = alert_payload.get("links")
    if links is not None and not isinstance(links, list):
        raise InvalidMessage(f"alert.links: must be a list, got a {type(links).__name__}")
    names: list[str] | None = None
    if transport_names is not None:
        if isinstance(transport_names, str):
            transport_names = [transport_names]
        if not isinstance(transport_names, (list, tuple)) or len(transport_names) > MAX_CHANNELS:
            raise InvalidMessage(f"transport_names: must be a list of at most {MAX_CHANNELS} channel names")
        if not all(isinstance(n, str) and _CHANNEL.match(n) for n in transport_names):
            raise InvalidMessage("transport_names: every entry must be a channel name (letters, digits, _ . -)")
        names = list(dict.fromkeys(transport_names))
    if alert_id is None:
        alert_id = uuid.uuid4().hex
    if not isinstance(alert_id, str) or not _ID.match(alert_id):
        raise InvalidMessage("alert_id: letters, digits, _ . : - (at most 64)")
    if attempt is None:
        attempt = 1
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 1 <= attempt <= 100_000:
        raise InvalidMessage("attempt: a whole number from 1 to 100000")
    return Message(alert_payload, names, capped_options(async_options, own, floor), alert_id, attempt)


def capped_options(options: Any, limits: AsyncAlertConfig, floor: float = MIN_RETRY_BACKOFF) -> dict[str, Any]:
    """A message's retry settings, each capped by ``limits`` (the worker's own settings): at most
    its ``MAX_RETRIES`` and ``RETRY_BACKOFF_MAX``, a first retry no sooner than ``floor``. Anything
    missing or malformed is the default (the worker's value, or 0.1.x's)."""
    # capping a message's retries only: queued.settings loads the audit and outbox modules
    from .settings import DEFAULT_MAX_RETRIES, DEFAULT_RETRY_BACKOFF_MAX

    own = limits.options()
    out = dict(own)
    out["MAX_RETRIES"] = (
        min(own["MAX_RETRIES"], DEFAULT_MAX_RETRIES) if limits.max_retries > 100 else own["MAX_RETRIES"]
    )
    if limits.max_retries > 100:
        out["RETRY_BACKOFF_MAX"] = min(float(own["RETRY_BACKOFF_MAX"]), float(DEFAULT_RETRY_BACKOFF_MAX))
    if options is None:
        return out
    if not isinstance(options, dict):
        raise InvalidMessage(f"async_options: must be a mapping, got a {type(options).__name__}")
    if any(not isinstance(k, str) or k.upper() not in _OPTION_KEYS for k in options):
        raise InvalidMessage("async_options: unknown key(s)")
    values = {str(k).upper(): v for k, v in options.items()}
    retries = values.get("MAX_RETRIES")
    if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
        out["MAX_RETRIES"] = min(retries, own["MAX_RETRIES"])
    cap = values.get("RETRY_BACKOFF_MAX")
    if isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap > 0 and cap == cap:
        out["RETRY_BACKOFF_MAX"] = min(float(cap), float(own["RETRY_BACKOFF_MAX"]))
    backoff = values.get("RETRY_BACKOFF")
    if isinstance(backoff, bool):
        out["RETRY_BACKOFF"] = backoff
    elif isinstance(backoff, (int, float)) and backoff == backoff and backoff > 0:
        out["RETRY_BACKOFF"] = min(max(float(backoff), floor), float(out["RETRY_BACKOFF_MAX"]))
    jitter = values.get("RETRY_JITTER")
    if isinstance(jitter, bool):
        out["RETRY_JITTER"] = jitter
    return out


def is_mapping(value: Any) -> bool:
    return isinstance(value, MappingABC)


def as_payload(value: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict of a mapping payload (Celery hands a dict; a test may hand any mapping)."""
    return dict(value)
