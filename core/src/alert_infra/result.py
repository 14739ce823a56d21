"""What happened to one dispatch: :class:`DeliveryResult` and :class:`ChannelOutcome`."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = ["ChannelOutcome", "DeliveryResult"]

#: Outcome statuses. ``sent`` and ``failed`` are deliveries; ``skipped`` means the
#: channel was not asked (routing: severity below its minimum, tags, disabled) or a
#: policy suppressed the alert (de-duplication, throttling): see ``suppressed_by``.
STATUSES = ("sent", "failed", "skipped")


class ChannelOutcome:
    """The outcome of one channel within a dispatch.

    Attributes:
        name: the channel name.
        status: ``"sent"``, ``"failed"`` or ``"skipped"``.
        attempts: how many times the transport was called (0 when skipped).
        elapsed: seconds spent on this channel, from the start of the dispatch.
        error: the exception class name when failed (never its message).
        retryable: for failures, whether a retry could help.
        retry_after: the provider's requested wait in seconds, if it gave one.
        reason: a short, secret-free explanation (why skipped, or what failed:
            the transport's own message after redaction).
        detail: for a delivery, what the transport reported (a string its
            ``send`` returned, redacted), such as which email provider delivered.
        suppressed_by: for a skipped channel, which rule skipped it:
            ``"routing"`` (disabled, severity, tags), ``"dedup"`` (the same alert
            within the channel's window) or ``"throttle"`` (over its budget).
    """

    __slots__ = (
        "name",
        "status",
        "attempts",
        "elapsed",
        "error",
        "retryable",
        "retry_after",
        "reason",
        "detail",
        "suppressed_by",
    )

    def __init__(
        self,
        name: str,
        status: str,
        *,
        attempts: int = 0,
        elapsed: float = 0.0,
        error: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
        detail: str | None = None,
        suppressed_by: str | None = None,
    ) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.name = name
        self.status = status
        self.attempts = attempts
        self.elapsed = elapsed
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after
        self.reason = reason
        self.detail = detail
        self.suppressed_by = suppressed_by

    def to_dict(self) -> dict[str, Any]:
        return {slot: getattr(self, slot) for slot in self.__slots__}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChannelOutcome):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        extra = f", error={self.error!r}" if self.error else ""
        extra += f", reason={self.reason!r}" if self.reason else ""
        return (
            f"ChannelOutcome(name={self.name!r}, status={self.status!r}, attempts={self.attempts}, "
            f"elapsed={self.elapsed:.3f}{extra})"
        )


class DeliveryResult:
    """The result of dispatching one alert (0.1.x fields kept).

    Attributes:
        sent: names of channels that delivered, in the order the channels were
            configured (however concurrently they ran).
        failed: ``{name: exception class name}`` for channels that failed.
        retryable: failed channel names for which a retry could help.
        non_retryable: failed channel names for which it cannot.
        outcomes: one :class:`ChannelOutcome` per selected channel, in order.
        ok: True when no channel failed (skipped channels are not failures).

    A result with nothing selected (dispatch disabled, or no channel matched)
    is ``ok`` with everything empty, as in 0.1.x.
    """

    __slots__ = ("sent", "failed", "retryable", "non_retryable", "outcomes")

    sent: tuple[str, ...]
    failed: dict[str, str]
    retryable: tuple[str, ...]
    non_retryable: tuple[str, ...]
    outcomes: tuple[ChannelOutcome, ...]

    def __init__(
        self,
        sent: Iterable[str] = (),
        failed: Mapping[str, str] | None = None,
        retryable: Iterable[str] = (),
        non_retryable: Iterable[str] = (),
        outcomes: Iterable[ChannelOutcome] = (),
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "sent", tuple(sent))
        setattr_(self, "failed", dict(failed or {}))
        setattr_(self, "retryable", tuple(retryable))
        setattr_(self, "non_retryable", tuple(non_retryable))
        setattr_(self, "outcomes", tuple(outcomes))

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[ChannelOutcome]) -> DeliveryResult:
        """Build a result (with the 0.1.x fields filled in) from per-channel outcomes."""
        outcomes = tuple(outcomes)
        sent: list[str] = []
        failed: dict[str, str] = {}
        retryable: list[str] = []
        non_retryable: list[str] = []
        for outcome in outcomes:
            if outcome.status == "sent":
                sent.append(outcome.name)
            elif outcome.status == "failed":
                failed[outcome.name] = outcome.error or "Exception"
                (retryable if outcome.retryable else non_retryable).append(outcome.name)
        return cls(sent, failed, retryable, non_retryable, outcomes)

    @property
    def ok(self) -> bool:
        """True when no channel failed."""
        return not self.failed

    @property
    def skipped(self) -> dict[str, str]:
        """``{name: reason}`` for channels that routing did not ask to deliver."""
        return {o.name: o.reason or "" for o in self.outcomes if o.status == "skipped"}

    @property
    def throttled(self) -> tuple[str, ...]:
        """Channels that skipped this alert because it was over their throttle budget."""
        return tuple(o.name for o in self.outcomes if o.suppressed_by == "throttle")

    @property
    def deduplicated(self) -> tuple[str, ...]:
        """Channels that skipped this alert as a duplicate within their ``dedup_window``."""
        return tuple(o.name for o in self.outcomes if o.suppressed_by == "dedup")

    def outcome(self, name: str) -> ChannelOutcome | None:
        """The outcome of the channel called ``name`` (the first, if several share it)."""
        for outcome in self.outcomes:
            if outcome.name == name:
                return outcome
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (for the CLI, logs and audit records)."""
        return {
            "ok": self.ok,
            "sent": list(self.sent),
            "failed": dict(self.failed),
            "retryable": list(self.retryable),
            "non_retryable": list(self.non_retryable),
            "outcomes": [o.to_dict() for o in self.outcomes],
        }

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"DeliveryResult is immutable; cannot assign to {name!r}")

    def __eq__(self, other: object) -> bool:
        # The 0.1.x fields only: ``outcomes`` carries timings, which never repeat,
        # and 0.1.x code compares results built by hand with real ones.
        if not isinstance(other, DeliveryResult):
            return NotImplemented
        return (self.sent, self.failed, self.retryable, self.non_retryable) == (
            other.sent,
            other.failed,
            other.retryable,
            other.non_retryable,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"DeliveryResult(sent={self.sent!r}, failed={self.failed!r}, retryable={self.retryable!r}, "
            f"non_retryable={self.non_retryable!r})"
        )
