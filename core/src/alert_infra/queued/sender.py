"""``[alert_infra] delivery = "spool"``: the dispatcher whose one channel is the spool write.

``send()`` commits the message to the spool before it returns: ``sent == ("spool",)``, the spool
id in the outcome's ``detail`` (``"queued as spool row <id> (alert <alert id>)"``). When the spool
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
from ..result import ChannelOutcome, DeliveryResult
from ..routing import channel_names
from .message import build_message, new_alert_id
from .settings import QUEUED_DETAIL, AsyncAlertConfig, SpoolSettings, spool_settings
from .spool import Spool, SpoolUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..config import AlertConfig

__all__ = ["CHANNEL_NAME", "SpoolDispatcher", "spool_dispatcher"]

#: The name of the one channel of a :class:`SpoolDispatcher` (``sent == ("spool",)``).
CHANNEL_NAME = "spool"
#: ``(channels, alert id)`` of the send() in progress in this context, for the spool channel.
_PENDING: ContextVar[tuple[list[str] | None, str] | None] = ContextVar("alert_infra_spool_pending", default=None)


class _SpoolTransport:
    name = CHANNEL_NAME
    # A local SQLite write, bounded by the spool's busy timeout: in the caller's thread.
    blocking = False

    def __init__(self, owner: SpoolDispatcher) -> None:
        self._owner = owner

    def send(self, alert: Alert) -> str:
        owner = self._owner
        names, alert_id = _PENDING.get() or (None, None)
        message = build_message(alert, names, owner.settings, alert_id)
        row = owner.spool.put(message)
        return f"{QUEUED_DETAIL}{message.alert_id} (spool row {row})"


class SpoolDispatcher(AlertDispatcher):
    """Spool alerts for ``alert-infra worker`` instead of delivering them in this process.

    Args:
        spool: the :class:`~alert_infra.queued.spool.Spool` to write to.
        fallback: what builds the in-process dispatcher used when the spool cannot take an alert
            (called once, on the first such alert).
        settings: the retry settings each message carries.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        fallback: Any = None,
        settings: AsyncAlertConfig | None = None,
        **dispatcher_options: Any,
    ) -> None:
        self.spool = spool
        self.settings = settings or AsyncAlertConfig()
        self._fallback_factory = fallback
        self._fallback: AlertDispatcher | None = None
        self.spooled = 0
        self.fell_back = 0
        super().__init__([_SpoolTransport(self)], **dispatcher_options)

    def send(  # type: ignore[override]
        self, alert: Alert, channels: Iterable[str] | str | None = None
    ) -> DeliveryResult:
        """Spool ``alert`` for the channels named (default: the worker's default channels)."""
        from ..exceptions import AlertValidationError

        if not isinstance(alert, Alert):
            raise AlertValidationError(f"send() needs an Alert, got a {type(alert).__name__}")
        names = channel_names(channels) if channels is not None else None
        alert_id = new_alert_id()
        pending, delivery = _PENDING.set((names, alert_id)), _audit.set_delivery_id(alert_id)
        try:
            result = super().send(alert)
        finally:
            _PENDING.reset(pending)
            _audit.reset_delivery_id(delivery)
        outcome = result.outcome(CHANNEL_NAME)
        if outcome is None or outcome.status != "failed":
            if outcome is not None and outcome.status == "sent":
                self.spooled += 1
            return result
        return self._in_process(alert, names, outcome)

    async def asend(  # type: ignore[override]
        self, alert: Alert, channels: Iterable[str] | str | None = None
    ) -> DeliveryResult:
        """Like :meth:`send`, off the event loop."""
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.send, alert, channels)

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


def open_spool(settings: SpoolSettings) -> Spool:
    return Spool(settings.path, sync=settings.sync, max_bytes=settings.max_bytes, lease=settings.lease)


def spool_dispatcher(config: AlertConfig, *, strict: bool = False, **kwargs: Any) -> SpoolDispatcher:
    """The ``spool`` delivery of the ``alert_infra.delivery`` entry-point group."""
    settings = spool_settings(config)
    if "audit" not in kwargs and config.audit is not None:
        from ..audit import DEFAULT_RETENTION, open_audit

        retention = config.audit_retention if config.audit_retention is not None else DEFAULT_RETENTION
        kwargs["audit"] = open_audit(config.audit, retention=retention)
    kwargs.setdefault("enabled", config.enabled)
    kwargs.setdefault("timeout", 5.0)

    def fallback() -> AlertDispatcher:
        return config.build_dispatcher(delivery="inline")

    if strict:
        # Refuse at once what the worker would refuse: a configuration with broken channels.
        config.build_dispatcher(delivery="inline", strict=True).close()
    return SpoolDispatcher(open_spool(settings), fallback=fallback, **kwargs)


def spool_problem(exc: SpoolUnavailable) -> str:
    return str(exc)
