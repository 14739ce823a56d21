"""A channel as the dispatcher sees it: how to call its transport, its settings, its health, and
the outcomes it can end in without a try (broken, hung, timed out) or after one (failed).

Private engine of :mod:`alert_infra.dispatcher` (its :class:`Channel` and :class:`Flow` are the
dispatcher's working values, not an API).
"""

from __future__ import annotations

import time
from _thread import allocate_lock

from .exceptions import AlertTransportTimeoutError, NonRetryableAlertTransportError, RetryableAlertTransportError
from .result import ChannelOutcome
from .security import redact_and_cut, register_secret

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any

    from .alert import Alert
    from .routing import Route

__all__ = ["MAX_OVERDUE_PER_CHANNEL", "MAX_RUNNING_PER_CHANNEL", "OUTCOME_REASON_LIMIT", "is_retryable_exception"]

#: Sends of one channel that may still be running past their timeout; beyond it, the channel
#: fails fast ("still running") instead of taking another thread.
MAX_OVERDUE_PER_CHANNEL = 4
#: Sends of one channel that may run in worker threads at once (every dispatch and every caller
#: of one dispatcher together). A send beyond waits for a slot, within its caller's bound. Any
#: running send may hang in its provider, so this is also the most threads one channel can ever
#: hold hung, however many ``send()`` or ``asend()`` calls pile up: with
#: :data:`MAX_OVERDUE_PER_CHANNEL` of them written off, the channel then fails fast.
MAX_RUNNING_PER_CHANNEL = 8

#: The longest :attr:`ChannelOutcome.reason` (characters): a failure's message, redacted on its full
#: length, then cut (``…`` marks a cut; see :func:`alert_infra.security.redact_and_cut`).
OUTCOME_REASON_LIMIT = 500


def is_retryable_exception(exc: BaseException) -> bool:
    """Whether a retry could help: everything but :class:`NonRetryableAlertTransportError` (0.1.x rule)."""
    return not isinstance(exc, NonRetryableAlertTransportError)


def read_attribute(obj: Any, attribute: str, default: Any) -> tuple[Any, BaseException | None]:
    """``getattr`` that survives a property raising anything: ``(value, error)``."""
    try:
        return getattr(obj, attribute, default), None
    except Exception as exc:  # noqa: BLE001 - a hostile transport fails its own channel only
        return default, exc


class Channel:
    """A transport as the dispatcher sees it: its name, how to call it, its settings, its health."""

    __slots__ = (
        "name",
        "transport",
        "timeout",
        "blocking",
        "send",
        "asend",
        "policy",
        "broken",
        "overdue",
        "max_send_time",
        "inline",
        "in_caller",
        "connected_bound",
        "update",
        "slots",
    )

    def __init__(self, transport: Any, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self.policy: Route | None = None  # the route, when it has a delivery policy
        self.overdue = 0  # sends written off and still running
        self.broken: BaseException | None = None  # an attribute that raised: the channel fails alone
        name, error = read_attribute(transport, "name", None)
        self.name = name if isinstance(name, str) and name else type(transport).__name__
        blocking, error2 = read_attribute(transport, "blocking", True)
        self.blocking = bool(blocking) if error2 is None else True
        send, error3 = read_attribute(transport, "send", None)
        self.send = send if callable(send) else None
        asend, error4 = read_attribute(transport, "asend", None)
        self.asend = asend if callable(asend) else None
        update, _ = read_attribute(transport, "update", None)  # update(alert, handle): edits a delivered message
        self.update = update if callable(update) else None
        fields, error5 = read_attribute(transport, "secret_fields", ())
        bound, _ = read_attribute(transport, "max_send_time", None)
        ok = isinstance(bound, (int, float)) and not isinstance(bound, bool) and 0 < bound < float("inf")
        self.max_send_time: float | None = float(bound) if ok else None
        self.inline = False  # set by settle()
        self.in_caller = False  # set by settle()
        connected, _ = read_attribute(transport, "connected_send_time", None)
        ok = isinstance(connected, (int, float)) and not isinstance(connected, bool) and 0 < connected < float("inf")
        self.connected_bound: float | None = float(connected) if ok else None
        self.slots: Any = None  # MAX_RUNNING_PER_CHANNEL thread slots, made on the first threaded send
        self.broken = error or error2 or error3 or error4 or error5
        try:
            for field in fields or ():
                value, error = read_attribute(transport, field, None)
                self.broken = self.broken or error
                register_secret(value, owner=transport)
        except Exception as exc:  # noqa: BLE001 - secret_fields that cannot be iterated
            self.broken = self.broken or exc

    def settle(self) -> None:
        """Decide where this channel runs in :meth:`AlertDispatcher.send`: in the caller's thread
        when it never waits on I/O (``blocking = False``) or bounds its own time within the
        channel's timeout (``max_send_time``) and has no retries to wait between; else in a worker
        thread, so the caller can stop waiting. The HTTP layer does not declare ``max_send_time``:
        its total deadline starts after name resolution, which nothing in the process can bound.
        It declares ``connected_send_time`` instead (its bound on a connection already open): a
        channel with no policy whose bound fits its timeout is tried in the caller's thread when it
        is the only one selected (``in_caller``), and handed to a worker thread if the send would
        need a new connection (see :data:`alert_infra._in_caller.IN_CALLER`)."""
        self_bounded = (
            self.max_send_time is not None
            and self.max_send_time <= self.timeout
            and (self.policy is None or self.policy.retry is None)
        )
        self.inline = self.send is not None and (not self.blocking or self_bounded)
        bound = self.connected_bound
        self.in_caller = (
            not self.inline
            and self.send is not None
            and self.policy is None  # no admission to undo, no retries to wait between
            and bound is not None
            and bound <= self.timeout
        )

    def failure(self, logger: Any, exc: BaseException, elapsed: float, attempts: int = 1) -> ChannelOutcome:
        """The outcome of a try that raised ``exc`` (its message redacted, then cut)."""
        retryable = is_retryable_exception(exc)
        logger.warning("alert channel %s failed: %s", self.name, type(exc).__name__)
        message = redact_and_cut(exc, OUTCOME_REASON_LIMIT).strip()  # redacted first, then cut
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, RetryableAlertTransportError) else None
        return ChannelOutcome(
            self.name,
            "failed",
            attempts=attempts,
            elapsed=elapsed,
            error=type(exc).__name__,
            retryable=retryable,
            retry_after=retry_after if isinstance(retry_after, (int, float)) else None,
            reason=message or None,
        )

    def refusal(self, logger: Any, started: float) -> ChannelOutcome | None:
        """An outcome for a channel that cannot take an alert now, without using a thread."""
        if self.broken is not None:
            exc = self.broken
            logger.warning("alert channel %s is broken: %s", self.name, type(exc).__name__)
            return ChannelOutcome(
                self.name,
                "failed",
                error=type(exc).__name__,
                retryable=False,
                reason=f"the transport's attributes raise {type(exc).__name__}",
            )
        if self.overdue >= MAX_OVERDUE_PER_CHANNEL:
            logger.warning("alert channel %s is hung: %d sends still running", self.name, self.overdue)
            return ChannelOutcome(
                self.name,
                "failed",
                elapsed=time.perf_counter() - started,
                error=AlertTransportTimeoutError.__name__,
                retryable=True,
                reason=f"not started: {self.overdue} earlier sends to this channel are still running past "
                f"their {self.timeout:g}s timeout",
            )
        return None

    def timed_out(self, logger: Any, started: float, ran: bool, bound: float) -> ChannelOutcome:
        """The outcome of a send the caller stopped waiting for after ``bound`` seconds."""
        logger.warning("alert channel %s timed out: %s", self.name, AlertTransportTimeoutError.__name__)
        reason = f"no answer within {bound:g}s" if ran else f"not started within {bound:g}s: every worker was busy"
        return ChannelOutcome(
            self.name,
            "failed",
            attempts=1 if ran else 0,
            elapsed=time.perf_counter() - started,
            error=AlertTransportTimeoutError.__name__,
            retryable=True,
            reason=reason,
        )


class Flow:
    """The live state of one channel's delivery: its dedup claim, and whether the caller gave up."""

    __slots__ = ("channel", "alert", "started", "claim", "abandoned", "lock", "routed", "handle", "until")

    def __init__(self, channel: Channel, alert: Alert, started: float, routed: Any = None) -> None:
        self.channel = channel
        self.alert = alert
        self.started = started
        self.claim: Any = None
        self.abandoned = False
        self.lock = allocate_lock()
        # A resolve or acknowledge routed by the notification log (``routed`` is that channel's
        # log entry): it passes no throttle or de-duplication, and goes through the transport's
        # ``update(alert, handle)`` when it has one and the log kept the provider's handle.
        self.routed = routed is not None
        self.handle: Any = getattr(routed, "handle", None)
        #: For a send run in a worker thread: when its caller stops waiting (``perf_counter``); a
        #: try that finds every slot of its channel taken waits at most until then.
        self.until: float | None = None
