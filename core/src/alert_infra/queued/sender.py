"""The sender's side of queued delivery: :class:`QueuedDispatcher`, the dispatcher whose one channel
hands the alert to a queue engine (the base of the spool's, Celery's and Django's task framework's
dispatchers), and ``[alert_infra] delivery = "spool"`` (:class:`SpoolDispatcher`).

The spool's ``send()`` commits the message to the spool before it returns: ``sent == ("spool",)``, the spool
id in the outcome's ``detail`` (``"queued as task <alert id> (spool row <id>)"``). When the spool
cannot take it (past ``spool_max_bytes``, disk full, read-only, locked longer than
:data:`~alert_infra.queued.spool.BUSY_TIMEOUT`), the alert is delivered in-process instead and the
result says so: the in-process outcomes, and a ``skipped`` ``spool`` outcome whose reason names
the spool problem. Never a silent drop.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .. import audit as _audit
from ..alert import Alert
from ..dispatcher import AlertDispatcher
from ..exceptions import AlertConfigurationError, AlertValidationError
from ..result import ChannelOutcome, DeliveryResult, PlainDetail
from ..routing import channel_names
from .message import new_alert_id
from .settings import QUEUED_DETAIL, AsyncAlertConfig, SpoolSettings, spool_settings
from .spool import (
    SENDER_CHECKPOINT_PAGES,
    WORKER_CHECKPOINT_PAGES,
    Spool,
    SpoolUnavailable,
    encode_json,
    row_body,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..config import AlertConfig

__all__ = ["CHANNEL_NAME", "QueuedDispatcher", "SpoolDispatcher", "spool_dispatcher"]

#: The name of the one channel of a :class:`SpoolDispatcher` (``sent == ("spool",)``).
CHANNEL_NAME = "spool"
#: ``(channels, alert id)`` of the send() in progress in this context, for the enqueue channel.
_PENDING: ContextVar[tuple[list[str] | None, str] | None] = ContextVar("alert_infra_queued_pending", default=None)


class _Enqueue:
    """The one channel of a :class:`QueuedDispatcher`: hand the alert to its engine."""

    def __init__(self, owner: QueuedDispatcher, blocking: bool, max_send_time: float | None) -> None:
        self._owner = owner
        self.name = owner.channel_name
        self.blocking = blocking
        self.max_send_time = max_send_time

    def send(self, alert: Alert) -> str:
        names, alert_id = _PENDING.get() or (None, None)
        return self._owner.publish(alert, names, alert_id)


class QueuedDispatcher(AlertDispatcher):
    """An :class:`~alert_infra.AlertDispatcher` whose one channel hands the alert to a queue engine
    (the spool, Celery, Django's task framework), so the audit trail, the ``after_dispatch`` hooks,
    ``asend``, ``close`` and the context manager work as for in-process delivery.

    ``send(alert, channels=None)`` checks the alert and the channel names, draws the alert id, marks
    the audit records of the context as that delivery's, and calls :meth:`publish` (an engine's one
    method) through the dispatcher; the result is ``sent == (channel_name,)`` with the engine's
    ``detail``. A failed enqueue is a failed result, or with ``fail_silently`` false an
    :class:`~alert_infra.AlertConfigurationError` (``failure_text``).

    Args:
        settings: the :class:`~alert_infra.queued.settings.AsyncAlertConfig` of the messages.
        blocking, max_send_time: the enqueue channel's (see :class:`~alert_infra.AlertDispatcher`:
            ``blocking=False`` runs it in the caller's thread).
        dispatcher_options: anything :class:`~alert_infra.AlertDispatcher` takes.
    """

    #: The name of the one channel (``sent == (channel_name,)``).
    channel_name = "queued"
    #: The worker keeps the notification log and routes resolves: the sender forwards them all
    #: (its own log would only know the deliveries of this process, and skip as "unmatched" the
    #: resolve of an alert another process or an earlier run sent).
    keeps_notification_log = False
    #: The error of a failed enqueue with ``fail_silently`` false (``error``: the outcome's error
    #: class, ``reason``: its reason).
    failure_text = "the alert could not be enqueued ({error}): {reason}"

    def __init__(
        self,
        settings: AsyncAlertConfig,
        *,
        blocking: bool = True,
        max_send_time: float | None = None,
        **dispatcher_options: Any,
    ) -> None:
        self.settings = settings
        super().__init__([_Enqueue(self, blocking, max_send_time)], **dispatcher_options)

    def publish(self, alert: Alert, channels: list[str] | None, alert_id: str | None) -> str:  # pragma: no cover
        """Hand ``alert`` (redacted) for ``channels`` (``None``: the worker's defaults) to the engine
        under ``alert_id``; the outcome's ``detail``. Raise to fail the enqueue."""
        raise NotImplementedError

    def send(
        self, alert: Alert, channels: Iterable[str] | str | None = None, *, transport_names: Any = None
    ) -> DeliveryResult:
        """Enqueue ``alert`` for the channels named (default: the worker's default channels)."""
        names, alert_id = self._prepare(alert, channels if channels is not None else transport_names)
        pending, delivery = _PENDING.set((names, alert_id)), _audit.set_delivery_id(alert_id)
        try:
            result = super().send(alert)
        finally:
            _PENDING.reset(pending)
            _audit.reset_delivery_id(delivery)
        return self._checked(result, alert, names)

    async def asend(
        self, alert: Alert, channels: Iterable[str] | str | None = None, *, transport_names: Any = None
    ) -> DeliveryResult:
        """Like :meth:`send`, for asyncio code: the enqueue runs off the event loop."""
        names, alert_id = self._prepare(alert, channels if channels is not None else transport_names)
        pending, delivery = _PENDING.set((names, alert_id)), _audit.set_delivery_id(alert_id)
        try:
            result = await super().asend(alert)
        finally:
            _PENDING.reset(pending)
            _audit.reset_delivery_id(delivery)
        return self._checked(result, alert, names)

    def _prepare(self, alert: Alert, channels: Iterable[str] | str | None) -> tuple[list[str] | None, str]:
        """``(channel names, alert id)`` of one enqueue, in the caller's thread."""
        if not isinstance(alert, Alert):
            raise AlertValidationError(f"send() needs an Alert, got a {type(alert).__name__}")
        return (channel_names(channels) if channels is not None else None), new_alert_id()

    def _checked(self, result: DeliveryResult, alert: Alert, names: list[str] | None) -> DeliveryResult:
        if result.failed and not self.settings.fail_silently:
            outcome = result.outcome(self.channel_name)
            error = outcome.error if outcome is not None else "Exception"
            reason = outcome.reason if outcome is not None and outcome.reason else "enqueue failed"
            raise AlertConfigurationError(self.failure_text.format(error=error, reason=reason))
        return result


class SpoolDispatcher(QueuedDispatcher):
    """Spool alerts for ``alert-infra worker`` instead of delivering them in this process.

    Args:
        spool: the :class:`~alert_infra.queued.spool.Spool` to write to.
        fallback: what builds the in-process dispatcher used when the spool cannot take an alert
            (called once, on the first such alert).
        settings: the retry settings each message carries.
    """

    channel_name = CHANNEL_NAME

    def __init__(
        self,
        spool: Spool,
        *,
        fallback: Any = None,
        settings: AsyncAlertConfig | None = None,
        **dispatcher_options: Any,
    ) -> None:
        self.spool = spool
        self._fallback_factory = fallback
        self._fallback: AlertDispatcher | None = None
        self.spooled = 0
        self.fell_back = 0
        self._options: tuple[AsyncAlertConfig, str] | None = None  # (settings, their JSON)
        # A local SQLite write, bounded by the spool's busy timeout: in the caller's thread.
        super().__init__(settings or AsyncAlertConfig(), blocking=False, **dispatcher_options)

    def publish(self, alert: Alert, channels: list[str] | None, alert_id: str | None) -> str:
        # build_message() and Spool.put() in one: the row of the same message, without the
        # Message between them, and the retry options encoded once per settings (a send() to the
        # spool is one SQLite commit and what is around it; the bench compares it with the bare
        # commit).
        settings = self.settings
        encoded = self._options
        if encoded is None or encoded[0] is not settings:
            encoded = self._options = (settings, encode_json(settings.options()))
        alert_id = alert_id or new_alert_id()
        body = row_body(alert.to_dict(), encoded[1])
        row = self.spool.put_row(alert_id, body, encode_json(list(channels)) if channels else None)
        return PlainDetail(f"{QUEUED_DETAIL}{alert_id} (spool row {row})")  # our id and row: nothing to redact

    def _checked(self, result: DeliveryResult, alert: Alert, names: list[str] | None) -> DeliveryResult:
        outcome = result.outcome(CHANNEL_NAME)
        if outcome is None or outcome.status != "failed":
            if outcome is not None and outcome.status == "sent":
                self.spooled += 1
            return result
        return self._in_process(alert, names, outcome)

    async def asend(
        self, alert: Alert, channels: Iterable[str] | str | None = None, *, transport_names: Any = None
    ) -> DeliveryResult:
        """Like :meth:`send`, off the event loop (the spool write and any in-process fallback)."""
        import asyncio  # asyncio code only: a synchronous application never loads it

        names = channels if channels is not None else transport_names
        return await asyncio.get_running_loop().run_in_executor(None, self.send, alert, names)

    def _in_process(self, alert: Alert, names: list[str] | None, failed: ChannelOutcome) -> DeliveryResult:
        reason = failed.reason or failed.error or "the spool cannot be written"
        self.fell_back += 1
        self.logger.warning("alert not spooled (%s): delivered in-process instead", reason)
        try:
            if self._fallback is None:
                if self._fallback_factory is None:
                    return DeliveryResult.from_outcomes([failed])
                self._fallback = self._fallback_factory()
            inline = self._fallback.send(alert, names) if names else self._fallback.send(alert)
        except Exception as exc:  # noqa: BLE001 - never raise into the caller
            return DeliveryResult.from_outcomes(
                [ChannelOutcome(CHANNEL_NAME, "failed", error=type(exc).__name__, retryable=True, reason=reason)]
            )
        note = ChannelOutcome(CHANNEL_NAME, "skipped", reason=f"{reason}: delivered in-process instead")
        return DeliveryResult.from_outcomes([note, *inline.outcomes])

    def close(self) -> None:
        try:
            super().close()
        finally:
            fallback, self._fallback = self._fallback, None
            if fallback is not None:
                fallback.close()
            self.spool.close()

    def __repr__(self) -> str:
        try:
            return f"SpoolDispatcher({self.spool.path!r})"
        except Exception:  # noqa: BLE001 - half-built
            return "SpoolDispatcher(?)"


def open_spool(settings: SpoolSettings, *, sender: bool = False) -> Spool:
    """The spool of ``settings``; a ``sender``'s leaves the WAL checkpoints to the workers (see
    :data:`~alert_infra.queued.spool.SENDER_CHECKPOINT_PAGES`)."""
    pages = SENDER_CHECKPOINT_PAGES if sender else WORKER_CHECKPOINT_PAGES
    return Spool(
        settings.path, sync=settings.sync, max_bytes=settings.max_bytes, lease=settings.lease, checkpoint_pages=pages
    )


def sender_options(config: AlertConfig, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` of a queued dispatcher built from ``config``: its audit trail (each enqueue is
    recorded) and ``enabled``, unless given."""
    if "audit" not in kwargs and config.audit is not None:
        retention = config.audit_retention if config.audit_retention is not None else _audit.DEFAULT_RETENTION
        kwargs["audit"] = _audit.open_audit(config.audit, retention=retention)
    kwargs.setdefault("enabled", config.enabled)
    return kwargs


def spool_dispatcher(config: AlertConfig, *, strict: bool = False, **kwargs: Any) -> SpoolDispatcher:
    """The ``spool`` delivery of the ``alert_infra.delivery`` entry-point group."""
    settings = spool_settings(config)
    kwargs = sender_options(config, kwargs)
    kwargs.setdefault("timeout", 5.0)

    def fallback() -> AlertDispatcher:
        return config.build_dispatcher(delivery="inline")

    if strict:
        # Refuse at once what the worker would refuse: a configuration with broken channels.
        config.build_dispatcher(delivery="inline", strict=True).close()
    return SpoolDispatcher(open_spool(settings, sender=True), fallback=fallback, **kwargs)


def spool_problem(exc: SpoolUnavailable) -> str:
    return str(exc)
