"""The worker step of queued delivery, for every engine: deliver a checked message and answer
"done" or "retry these channels in N s".

Idempotency records: a channel that got an alert is recorded (per alert id and channel, the moment
it succeeds, in the thread that delivered it; the last channel of a step whose store carries it to
the step's end, with the end: :class:`Records`) in a store shared by every worker of the queue (the
state backend for Celery, the spool file itself for the spool); a message run again (a redelivery,
a lease taken over after a SIGKILL) skips the channels recorded.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import audit as _audit
from ..alert import Alert
from ..security import guarded_repr
from .settings import DEFAULT_MAX_RETRIES, retry_countdown

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..result import DeliveryResult
    from .message import Message

__all__ = ["Records", "StepAnswer", "decide", "deliver", "record_sent", "records_at_once", "wanted_channels"]

_log = logging.getLogger("alert_infra")


class Records:
    """What a step needs of an idempotency store (the state backends offer it as is):
    ``delivered(keys)`` (those of ``keys`` recorded), ``mark_delivered(key, ttl)`` and
    ``mark_all_delivered(keys, ttl)``.

    ``with_the_step`` (true on a store whose ``mark_all_delivered`` keeps the records for the
    transaction that finishes the message: the spool worker's, which writes them with the row's
    delete): a step with one channel left hands that channel's record over when the send returns,
    instead of writing it from the dispatcher's thread the moment it succeeds (with one channel the
    two moments are the same send's end; the write then costs no transaction of its own)."""

    with_the_step = False

    def delivered(self, keys: Sequence[str]) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def mark_delivered(self, key: str, ttl: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def mark_all_delivered(self, keys: Sequence[str], ttl: float) -> None:  # pragma: no cover - interface
        for key in keys:
            self.mark_delivered(key, ttl)


#: (records, key prefix, alert id, ttl) of the step running in this context, read by
#: :func:`record_sent` in the dispatcher's threads (which run in a copy of the step's context).
_CURRENT: ContextVar[tuple[Any, str, str, float] | None] = ContextVar("alert_infra_queued_step", default=None)


def record_sent(channel: str) -> None:
    """A dispatcher's ``on_sent`` for queued delivery: record that ``channel`` got the alert of the
    step running in this context (no-op outside one)."""
    current = _CURRENT.get()
    if current is not None:
        records, prefix, alert_id, ttl = current
        records.mark_delivered(f"{prefix}:{alert_id}:{channel}", ttl)


def wanted_channels(dispatcher: Any, names: Sequence[str] | None) -> list[str]:
    """The channels a message asks for (``None``: the worker's default channels, disabled ones
    included so that their outcome says they are off)."""
    if names is not None:
        return list(names)
    if getattr(dispatcher, "default_channels", None) is not None:
        return list(dispatcher.default_channels)
    wanted = [getattr(t, "name", "?") for t in dispatcher.transports]
    wanted += [n for n, r in dispatcher.routes.items() if not r.enabled and n not in wanted]
    return wanted


def decide(result: DeliveryResult, retries: int, options: Mapping[str, Any]) -> tuple[list[str], float | None]:
    """After a delivery: the channels to retry and in how many seconds (``None``: done, either
    every channel finished or the retries are exhausted). Backoff with full jitter, the largest
    ``Retry-After`` honoured up to ``RETRY_BACKOFF_MAX``."""
    if not result.retryable:
        return [], None
    if retries >= int(options.get("MAX_RETRIES", DEFAULT_MAX_RETRIES)):
        return list(result.retryable), None
    waits = [o.retry_after for o in result.outcomes if o.name in result.retryable and o.retry_after]
    return list(result.retryable), retry_countdown(retries, options, max(waits) if waits else None)


@dataclass(repr=False)
class StepAnswer:
    """What one step did: ``countdown`` ``None`` means done (delete the message); ``ended``: a copy
    of a delivery whose other run started less than an outbox horizon ago (nothing was sent)."""

    result: DeliveryResult | None
    already: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    countdown: float | None = None
    ended: bool = False

    @guarded_repr
    def __repr__(self) -> str:
        return f"StepAnswer(already={self.already!r}, retry={self.retry!r}, countdown={self.countdown!r})"

    @property
    def done(self) -> bool:
        return self.countdown is None


def records_at_once(dispatcher: Any) -> bool:
    """Whether ``dispatcher.on_sent`` writes each channel's record the moment it succeeds
    (:func:`record_sent`, or a listener that calls it); else the step writes them after the send."""
    listener = getattr(dispatcher, "on_sent", None)
    return listener is record_sent or bool(getattr(listener, "_alert_infra_records", False))


def deliver(
    dispatcher: Any,
    records: Any,
    message: Message,
    *,
    prefix: str,
    ttl: float,
    retries: int,
    outbox: Any = None,
    copy: bool = False,
) -> StepAnswer:
    """Deliver ``message`` (checked: :func:`~alert_infra.queued.message.check_message`) to every
    channel it names that has no idempotency record yet; record each one the moment it succeeds
    (``dispatcher.on_sent`` is :func:`record_sent`: see :func:`records_at_once`); answer what to
    retry and when.

    ``outbox`` (an :class:`~alert_infra.outbox.Outbox` watching this delivery; ``copy``: this
    message is one its reaper published again): the records are read in the round trip that moves
    the entry on (:meth:`~alert_infra.outbox.Outbox.begin`), the entry is postponed by a retry's
    countdown and removed when the delivery is done. With it and one channel left, that channel's
    record goes with the entry's removal (one round trip), written as soon as the send returns.
    """
    alert_id = message.alert_id
    wanted = wanted_channels(dispatcher, message.transport_names)
    keys = {f"{prefix}:{alert_id}:{name}": name for name in wanted}
    if outbox is not None:
        go_on, found = outbox.begin(alert_id, list(keys), copy=copy)
        if not go_on:
            _log.info("alert %s: another run of it started less than %gs ago: this copy ends", alert_id, outbox.horizon)
            return StepAnswer(None, ended=True)
        recorded = set(found)
    else:
        recorded = set(records.delivered(list(keys))) if keys else set()
    already = [name for key, name in keys.items() if key in recorded]
    remaining = [name for name in wanted if name not in already]
    if already:
        _log.info("alert %s: %s already delivered: not sent again", alert_id, ", ".join(already))
    if not remaining:
        if outbox is not None:
            outbox.done(alert_id)
        return StepAnswer(None, already)
    alert = Alert.from_dict(message.alert)
    # Several channels: each one's record is written the moment it succeeds (a slower one may still
    # be sending when the worker dies).
    # One channel left: its record goes with the step's end (the outbox entry's removal, the spool
    # row's delete) when the store can carry it there.
    one = len(remaining) == 1 and (outbox is not None or bool(getattr(records, "with_the_step", False)))
    deferred = one or not records_at_once(dispatcher)
    token = _CURRENT.set(None if deferred else (records, prefix, alert_id, ttl))
    audit_token = _audit.set_delivery_id(alert_id)
    try:
        result = dispatcher.send(alert, remaining)
    finally:
        _audit.reset_delivery_id(audit_token)
        _CURRENT.reset(token)
    late = [f"{prefix}:{alert_id}:{name}" for name in result.sent] if deferred else []
    retry, countdown = decide(result, retries, message.options)
    if countdown is not None:
        _log.warning(
            "alert %s: retrying %s in %.1fs (retry %d of %d)",
            alert_id,
            ", ".join(retry),
            countdown,
            retries + 1,
            int(message.options.get("MAX_RETRIES", DEFAULT_MAX_RETRIES)),
        )
        if late:
            records.mark_all_delivered(late, ttl)
        if outbox is not None:
            outbox.postpone(alert_id, countdown)
        return StepAnswer(result, already, retry, countdown)
    if retry:
        _log.warning("alert %s: retries exhausted for %s", alert_id, ", ".join(retry))
    if outbox is not None:
        outbox.done(alert_id, late, ttl)
    elif late:
        records.mark_all_delivered(late, ttl)
    return StepAnswer(result, already, retry, countdown)
