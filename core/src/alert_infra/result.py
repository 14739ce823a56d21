"""What happened to one dispatch: :class:`DeliveryResult` and :class:`ChannelOutcome`.

``to_dict()`` of both is strict JSON whatever a transport put in an outcome
(non-finite floats become ``None``, huge integers a short string, other objects
their redacted text), and ``repr()`` never raises, even on a half-built instance,
and shows names and reasons redacted and shortened.
"""

from __future__ import annotations

from .exceptions import failure_class_of
from .security import _safe_str, redact_text, redact_value, safe_int

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = ["ChannelOutcome", "DeliveryResult", "PlainDetail", "Sent", "failure_class"]

#: Outcome statuses. ``sent`` and ``failed`` are deliveries; ``skipped`` means the
#: channel was not asked (routing: severity below its minimum, tags, disabled) or a
#: policy suppressed the alert (de-duplication, throttling): see ``suppressed_by``;
#: ``held`` means the channel's grouping keeps it for its group's next digest (not a failure).
STATUSES = ("sent", "failed", "skipped", "held")

#: The most a handle may weigh, as compact JSON: it is stored per (alert, channel) in the state.
MAX_HANDLE_BYTES = 2048
_HANDLE_SCALARS = (str, int, float, bool, type(None))


class PlainDetail(str):
    """A detail the core composed only of values that cannot hold a secret (its own alert ids,
    row numbers, fixed words), which the dispatcher keeps as it is instead of redacting it again.

    Every other detail a transport returns is redacted into its outcome. The redaction of a text
    never seen before is a full pass of every rule (~3 µs), and each unique text takes a place in
    the redactor's cache: a queued send's "queued as task <id> (spool row <n>)" is unique every
    time. Never wrap text that came from outside (a provider's answer, an alert's field) in it.
    """

    __slots__ = ()


class Sent:
    """What a transport's ``send`` may return instead of ``None`` or a detail string: a short
    ``detail`` (how it delivered; redacted into the outcome) and the provider's ``handle`` for this
    message, a small JSON-safe mapping (a message id, a receipt, a dedup key) that a later
    ``update(alert, handle)`` of the same alert receives (an edit on resolve, a cancel on ack).

    Args:
        detail: a short, secret-free note (at most 300 characters are kept).
        handle: a flat mapping of string keys to strings, numbers, booleans or ``None``, at most
            :data:`MAX_HANDLE_BYTES` as JSON.

    Raises:
        TypeError: a handle that is not such a mapping.
        ValueError: a handle over the size limit.
    """

    __slots__ = ("detail", "handle")

    def __init__(self, detail: str | None = None, handle: Mapping[str, Any] | None = None) -> None:
        if detail is not None and not isinstance(detail, str):
            raise TypeError("Sent.detail must be a string or None")
        clean: dict[str, Any] | None = None
        if handle is not None:
            if not hasattr(handle, "items"):
                raise TypeError("Sent.handle must be a mapping of names to strings, numbers, booleans or None")
            clean = {}
            for key, value in handle.items():
                if not isinstance(key, str) or not isinstance(value, _HANDLE_SCALARS):
                    raise TypeError(
                        "Sent.handle must be a flat mapping of string keys to strings, numbers, booleans or None"
                    )
                clean[key] = value
            import json  # a handle to check only: json stays out of `from alert_infra import DeliveryResult`

            if len(json.dumps(clean, separators=(",", ":"), default=str)) > MAX_HANDLE_BYTES:
                raise ValueError(f"Sent.handle is larger than {MAX_HANDLE_BYTES} bytes as JSON")
        self.detail = detail
        self.handle = clean

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sent):
            return NotImplemented
        return (self.detail, self.handle) == (other.detail, other.handle)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        try:
            keys = sorted(self.handle) if self.handle else []
            return f"Sent(detail={_repr_text(getattr(self, 'detail', None))}, handle_keys={keys!r})"
        except Exception:  # noqa: BLE001 - repr must never raise
            return "Sent(<unprintable>)"


def failure_class(outcome: ChannelOutcome) -> str | None:
    """Why ``outcome`` failed, as one of :data:`~alert_infra.exceptions.FAILURE_CLASSES`
    (``timeout``, ``rate_limited``, ``client_error``, ``server_error``, ``connection``, ``config``,
    ``other``); ``None`` when it did not fail. The one classification of alert-infra: results,
    the audit trail, ``alert-infra status`` and the metrics all use it.

    It is read from what the outcome records, never from its ``reason`` text:

    1. ``error``, the exception's class name: a standard name
       (:data:`~alert_infra.exceptions.KNOWN_NAMES`: ``TimeoutError``, ``ConnectionRefusedError``,
       ``SSLError``...), else the ``failure_class`` of the subclass of
       :class:`~alert_infra.AlertInfraError` of that name defined in this process
       (:func:`~alert_infra.exceptions.failure_class_of`);
    2. an error that says no more than ``other`` (the plain retryable class, a name this process
       does not know) but carries the provider's requested wait (``retry_after``) is
       ``rate_limited``: a provider asks for a wait when it limits us (Pushover's quota, SES's
       throttling raise the plain class with it);
    3. anything else is ``other``.
    """
    if outcome.status != "failed":
        return None
    found = failure_class_of(outcome.error)
    if found is not None and found != "other":
        return found
    if outcome.retry_after is not None:
        return "rate_limited"
    return "other"


class ChannelOutcome:
    """The outcome of one channel within a dispatch.

    Attributes:
        name: the channel name.
        status: ``"sent"``, ``"failed"``, ``"skipped"`` or ``"held"`` (kept for the digest of the
            channel's group, sent at the group's next flush; ``reason`` says when).
        attempts: how many times the transport was called (0 when skipped).
        elapsed: seconds spent on this channel, from the start of the dispatch.
        error: the exception class name when failed (never its message).
        retryable: for failures, whether a retry could help.
        retry_after: the provider's requested wait in seconds, if it gave one.
        reason: a short, secret-free explanation (why skipped, or what failed:
            the transport's own message after redaction).
        detail: for a delivery, what the transport reported (a string its
            ``send`` returned, or :attr:`Sent.detail`, redacted), such as which email
            provider delivered.
        handle: for a delivery, the provider's handle for the message (:attr:`Sent.handle`:
            a message id, a receipt), kept for a later ``update(alert, handle)``.
        suppressed_by: for a skipped channel, which rule skipped it:
            ``"routing"`` (disabled, severity, tags), ``"dedup"`` (the same alert
            within the channel's window), ``"throttle"`` (over its budget), ``"silence"``
            (an active silence matched; its id is in ``reason``), ``"inhibit"`` (an inhibit
            rule) or ``"unmatched"`` (a resolve or acknowledge this channel never delivered
            the firing alert of; see :mod:`alert_infra.lifecycle`).
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
        "handle",
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
        handle: Mapping[str, Any] | None = None,
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
        self.handle = handle

    @property
    def failure_class(self) -> str | None:
        """Why it failed (``timeout``, ``rate_limited``, ...; ``None`` unless failed): see
        :func:`failure_class`. Derived from ``error`` and ``retry_after`` on each read, never stored."""
        return failure_class(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (``json.dumps(..., allow_nan=False)`` never fails on it), with
        the derived ``failure_class`` beside the fields."""
        data = {slot: _json_value(getattr(self, slot, None)) for slot in self.__slots__}
        try:
            data["failure_class"] = failure_class(self)
        except Exception:  # noqa: BLE001 - a half-built outcome still serialises
            data["failure_class"] = None
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChannelOutcome):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        try:
            error, reason = getattr(self, "error", None), getattr(self, "reason", None)
            extra = f", error={_repr_text(error)}" if error else ""
            extra += f", reason={_repr_text(reason)}" if reason else ""
            elapsed = getattr(self, "elapsed", None)
            elapsed_text = f"{elapsed:.3f}" if isinstance(elapsed, (int, float)) else "?"
            attempts = getattr(self, "attempts", "?")
            return (
                f"ChannelOutcome(name={_repr_text(getattr(self, 'name', '?'))}, "
                f"status={_repr_text(getattr(self, 'status', '?'))}, "
                f"attempts={attempts if isinstance(attempts, int) else '?'}, elapsed={elapsed_text}{extra})"
            )
        except Exception:  # noqa: BLE001 - repr must never raise
            return "ChannelOutcome(<unprintable>)"


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
        failed: dict[str, str] = {}
        if len(outcomes) == 1 and outcomes[0].status == "sent":  # the common dispatch
            sent: tuple[str, ...] = (outcomes[0].name,)
            retryable: tuple[str, ...] = ()
            non_retryable: tuple[str, ...] = ()
        else:
            names: list[str] = []
            again: list[str] = []
            never: list[str] = []
            for outcome in outcomes:
                if outcome.status == "sent":
                    names.append(outcome.name)
                elif outcome.status == "failed":
                    failed[outcome.name] = outcome.error or "Exception"
                    (again if outcome.retryable else never).append(outcome.name)
            sent, retryable, non_retryable = tuple(names), tuple(again), tuple(never)
        # Every dispatch builds one: the slots are filled through their descriptors (the class's
        # __setattr__ refuses writes), not through __init__, which would copy every value again.
        result = object.__new__(cls)
        _SET_SENT(result, sent)
        _SET_FAILED(result, failed)
        _SET_RETRYABLE(result, retryable)
        _SET_NON_RETRYABLE(result, non_retryable)
        _SET_OUTCOMES(result, outcomes)
        return result

    @property
    def ok(self) -> bool:
        """True when no channel failed."""
        return not self.failed

    @property
    def skipped(self) -> dict[str, str]:
        """``{name: reason}`` for channels that routing did not ask to deliver."""
        return {o.name: o.reason or "" for o in self.outcomes if o.status == "skipped"}

    @property
    def held(self) -> tuple[str, ...]:
        """Channels whose grouping holds this alert for their group's next digest (status ``held``)."""
        return tuple(o.name for o in self.outcomes if o.status == "held")

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
        """A JSON-serialisable form (for the CLI, logs and audit records); ``held`` (the channels
        whose grouping holds the alert) only when some does."""
        data = {
            "ok": self.ok,
            "sent": [_json_value(name) for name in self.sent],
            "failed": {_safe_str(name): _json_value(error) for name, error in self.failed.items()},
            "retryable": [_json_value(name) for name in self.retryable],
            "non_retryable": [_json_value(name) for name in self.non_retryable],
            "outcomes": [o.to_dict() for o in self.outcomes],
        }
        held = self.held
        if held:
            data["held"] = [_json_value(name) for name in held]
        return data

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
        try:
            parts = []
            for field in ("sent", "failed", "retryable", "non_retryable"):
                value = getattr(self, field, None)
                parts.append(f"{field}={'?' if value is None else _short(redact_text(repr(value)), 400)}")
            return f"DeliveryResult({', '.join(parts)})"
        except Exception:  # noqa: BLE001 - repr must never raise
            return "DeliveryResult(<unprintable>)"


_SET_SENT, _SET_FAILED, _SET_RETRYABLE, _SET_NON_RETRYABLE, _SET_OUTCOMES = (
    DeliveryResult.__dict__[name].__set__ for name in ("sent", "failed", "retryable", "non_retryable", "outcomes")
)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _repr_text(value: object, limit: int = 200) -> str:
    """repr of a string, redacted first and then shortened; a non-string shows its type."""
    if isinstance(value, str):
        return repr(_short(redact_text(value), limit))
    return f"<{type(value).__name__}>"


def _json_value(value: object) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, int):
        return safe_int(value)
    if isinstance(value, float):
        number = float.__mul__(value, 1.0)
        return number if number - number == 0.0 else None  # NaN and infinities: None
    return redact_value(value)
