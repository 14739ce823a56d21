"""Delivery policies of a channel: retries, throttling and de-duplication.

They are settings of a :class:`~alert_infra.dispatcher.Route` (``retry``,
``throttle``, ``dedup_window``), filled from configuration::

    [channels.pager]
    type = "pagerduty"
    routing_key = "${PAGERDUTY_ROUTING_KEY}"
    retry = { attempts = 5, backoff = 1.0, max_backoff = 60 }
    throttle = { rate = 10, per = 60 }
    dedup_window = 300

What each one does, in the order the dispatcher applies them:

1. **De-duplication**: the same alert (same fingerprint and status) sent to the
   same channel again within ``dedup_window`` seconds is skipped with
   ``suppressed_by = "dedup"``. Only a delivery keeps the window: an alert that
   was throttled or failed does not suppress its next occurrence.
2. **Throttling**: two token buckets, checked and spent together: the
   channel's (``rate`` per ``per`` seconds, up to ``burst`` at once, default
   ``rate``) and the alert's own (``alert_rate`` per ``per``; default half the
   channel's rate, rounded up), so one noisy alert can never use up a channel's
   whole budget. A refused alert is skipped with ``suppressed_by = "throttle"``.
3. **Retries**: a *retryable* failure (see :func:`~alert_infra.is_retryable_exception`)
   is tried again up to ``attempts`` tries in all, after an exponential backoff
   with full jitter (a random wait between 0 and ``min(max_backoff, backoff *
   2**(n-1))``), or after exactly the provider's ``retry_after`` when it gave
   one. Retrying earlier than the provider asked would only earn another 429,
   so a ``retry_after`` longer than ``max_retry_after``, or a wait that would end
   past the dispatch's deadline, ends the retries: the outcome is a retryable
   failure carrying ``retry_after``, for the caller (or a queue) to take up.

Every number is range-checked when a policy is made (see ``docs/guide/policies.md``,
"Bounds"): ``attempts`` from 1 to :data:`MAX_ATTEMPTS`, the backoff settings from 0
to 30 days, ``rate`` / ``alert_rate`` from :data:`MIN_RATE` (``alert_rate`` also 0)
to a billion, ``per`` up to 30 days, ``burst`` at least 1. Errors name the setting and
never quote the value.
"""

from __future__ import annotations

from ._checks import MAX_COUNT, MAX_WINDOW, check_count, check_seconds, describe
from .exceptions import AlertValidationError
from .security import guarded_repr

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .state import Bucket

__all__ = ["RetryPolicy", "Throttle"]


#: The most tries a retry policy may make (the first included). A dispatch's ``deadline``
#: ends retries long before this in practice; the cap keeps a typo (``attempts = 1e9``) harmless.
MAX_ATTEMPTS = 100
#: The smallest positive rate of a throttle (alerts per ``per`` seconds): a smaller one would
#: refill a bucket so slowly that the wait for a token is not a number any clock can wait for.
MIN_RATE = 0.001


def _rate(value: Any, what: str, *, zero: bool = False, minimum: float = MIN_RATE) -> float:
    """A rate or bucket size: a finite number in ``[minimum, MAX_COUNT]`` (``0`` too with ``zero``).

    The error names ``what`` and the range, never the value (see :mod:`alert_infra._checks`).
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    number = 0.0
    if ok:
        try:
            number = float(value)
        except OverflowError:
            ok = False
        else:
            ok = (minimum <= number <= MAX_COUNT) or (zero and number == 0.0)
    if not ok:
        low = f"0 or from {minimum:g}" if zero else f"from {minimum:g}"
        raise AlertValidationError(f"{what}: must be a number {low} to {MAX_COUNT:,}, got {describe(value)}") from None
    return number


def _check_keys(values: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = [str(k) for k in values if k not in known]
    if unknown:
        raise AlertValidationError(f"{where}: unknown key {', '.join(unknown)}; known: {', '.join(known)}")


class RetryPolicy:
    """Retries of retryable failures with exponential backoff and full jitter.

    Args:
        attempts: tries in all, the first included (1 = no retry).
        backoff: the first retry's upper bound, in seconds; doubled each retry.
        max_backoff: the largest upper bound of a backoff wait.
        max_retry_after: the longest provider-requested wait (``Retry-After``)
            the dispatcher will honour within one dispatch.
    """

    __slots__ = ("attempts", "backoff", "max_backoff", "max_retry_after")

    KEYS = ("attempts", "backoff", "max_backoff", "max_retry_after")

    def __init__(
        self, attempts: int = 3, backoff: float = 0.5, max_backoff: float = 30.0, max_retry_after: float = 60.0
    ) -> None:
        self.attempts = check_count(attempts, "retry.attempts", maximum=MAX_ATTEMPTS)
        self.backoff = check_seconds(backoff, "retry.backoff", maximum=MAX_WINDOW, zero=True)
        self.max_backoff = check_seconds(max_backoff, "retry.max_backoff", maximum=MAX_WINDOW, zero=True)
        self.max_retry_after = check_seconds(max_retry_after, "retry.max_retry_after", maximum=MAX_WINDOW, zero=True)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "retry") -> RetryPolicy:
        """Build from a configuration table; unknown keys are an error naming them."""
        _check_keys(values, cls.KEYS, where)
        return cls(**dict(values))

    def delay(self, retry: int, retry_after: float | None, random: Callable[[], float]) -> float | None:
        """Seconds to wait before retry number ``retry`` (1 for the first), or ``None`` to stop.

        ``retry_after`` is what the provider asked for, if anything; ``random``
        returns a float in [0, 1).
        """
        if retry_after is not None:
            return float(retry_after) if retry_after <= self.max_retry_after else None
        ceiling = min(self.max_backoff, self.backoff * (2.0 ** min(retry - 1, 62)))
        return random() * ceiling

    @guarded_repr
    def __repr__(self) -> str:
        return (
            f"RetryPolicy(attempts={self.attempts}, backoff={self.backoff:g}, max_backoff={self.max_backoff:g}, "
            f"max_retry_after={self.max_retry_after:g})"
        )


class Throttle:
    """Token-bucket throttling of one channel, and of each alert within it.

    Args:
        rate: alerts allowed per ``per`` seconds on the channel.
        per: the period in seconds (default 60).
        burst: how many may go at once before the rate applies (default ``rate``).
        alert_rate: alerts allowed per ``per`` seconds for any one alert key
            (its fingerprint); default ``ceil(rate / 2)``; ``0`` turns the
            per-alert budget off.
    """

    __slots__ = ("rate", "per", "burst", "alert_rate")

    KEYS = ("rate", "per", "burst", "alert_rate")

    def __init__(self, rate: float, per: float = 60.0, burst: float | None = None, alert_rate: float | None = None):
        self.rate = _rate(rate, "throttle.rate")
        self.per = check_seconds(per, "throttle.per", maximum=MAX_WINDOW)
        # At least one token at once, or no alert could ever pass.
        self.burst = _rate(burst, "throttle.burst", minimum=1.0) if burst is not None else max(1.0, self.rate)
        if alert_rate is None:
            alert_rate = -(-self.rate // 2)  # half, rounded up
        self.alert_rate = _rate(alert_rate, "throttle.alert_rate", zero=True)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "throttle") -> Throttle:
        """Build from a configuration table; unknown keys and a missing ``rate`` are errors naming them."""
        _check_keys(values, cls.KEYS, where)
        if "rate" not in values:
            raise AlertValidationError(f"{where}.rate: required (alerts allowed per `per` seconds)")
        return cls(**dict(values))

    def buckets(self, channel: str, alert_key: str) -> list[Bucket]:
        from .state import Bucket  # a throttle only: a retry policy alone loads no state backends

        buckets = [Bucket(f"tb:{channel}", self.burst, self.rate, self.per, "the channel's")]
        if self.alert_rate:
            # At least one token, or the alert could never pass.
            capacity = max(1.0, self.alert_rate)
            buckets.append(Bucket(f"tb:{channel}:{alert_key}", capacity, self.alert_rate, self.per, "this alert's"))
        return buckets

    def describe(self, index: int) -> str:
        if index == 0:
            return f"the channel's budget of {self.rate:g} per {self.per:g}s"
        return f"this alert's budget of {self.alert_rate:g} per {self.per:g}s"

    @guarded_repr
    def __repr__(self) -> str:
        return f"Throttle(rate={self.rate:g}, per={self.per:g}, burst={self.burst:g}, alert_rate={self.alert_rate:g})"
