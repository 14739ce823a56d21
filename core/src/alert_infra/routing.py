"""Routing: which channels an alert goes to, and each channel's settings.

The first gate of admission (:mod:`alert_infra.admission`): :func:`plan` turns ``send(alert,
channels)`` into the list of channels to consider, in configured order, each with the verdict of
its :class:`Route` (a channel that is disabled, or whose minimum severity or tags the alert does
not meet, is skipped with ``suppressed_by="routing"``); names that match no channel become failed
outcomes that say what the known names are.
"""

from __future__ import annotations

from ._checks import (
    MAX_WINDOW,
    check_seconds,
    did_you_mean,  # the cold path of a typo
)
from .alert import Alert, severity_rank
from .exceptions import AlertValidationError
from .lifecycle.gates import ADMIT, Verdict
from .result import ChannelOutcome

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from .policies import RetryPolicy, Throttle

__all__ = ["Route", "RoutingGate", "channel_names", "plan", "skipped", "unknown_channel_message"]


def _tags_of(tags: Any) -> frozenset[str]:
    if tags is None:
        return frozenset()
    if isinstance(tags, str):  # one tag, as Alert(tags="payments") and send(channels="ops") take one
        tags = (tags,)
    try:
        items = tuple(tags)
    except TypeError:
        raise AlertValidationError(f"Route tags: must be a list of strings, got a {type(tags).__name__}") from None
    bad = [type(t).__name__ for t in items if not isinstance(t, str) or not t.strip()]
    if bad:
        raise AlertValidationError(f"Route tags: every tag must be a non-empty string, got a {bad[0]}")
    return frozenset(t.strip() for t in items)


class Route:
    """Settings of one channel: routing (on or off, minimum severity, tags), its
    timeout, and its delivery policies (see :mod:`alert_infra.policies`).

    Args:
        enabled: False skips the channel (reported as skipped).
        min_severity: skip alerts below this severity.
        tags: deliver only alerts carrying one of these tags (a string is one tag).
        timeout: seconds the dispatcher waits for this channel (at most one hour).
        retry: a :class:`~alert_infra.policies.RetryPolicy` (or its mapping).
        throttle: a :class:`~alert_infra.policies.Throttle` (or its mapping).
        dedup_window: seconds within which the same alert is delivered once (at most 30 days).
    """

    __slots__ = ("enabled", "min_severity", "min_rank", "tags", "timeout", "retry", "throttle", "dedup_window")

    def __init__(
        self,
        *,
        enabled: bool = True,
        min_severity: str | None = None,
        tags: Iterable[str] | str = (),
        timeout: float | None = None,
        retry: RetryPolicy | Mapping[str, Any] | bool | None = None,
        throttle: Throttle | Mapping[str, Any] | bool | None = None,
        dedup_window: float | None = None,
    ) -> None:
        self.enabled = bool(enabled)
        self.min_severity = min_severity
        self.min_rank = severity_rank(min_severity) if min_severity else None
        self.tags = _tags_of(tags)
        self.timeout = check_seconds(timeout, "Route timeout") if timeout is not None else None
        if retry is False:  # as in configuration: `retry = false`
            retry = None
        if throttle is False:
            throttle = None
        if retry is True or throttle is True:
            raise AlertValidationError("retry and throttle take a policy, a mapping or False, not True")
        if retry is not None or throttle is not None:
            # a route with retry or throttle only: a Route without them loads no policies
            from .policies import RetryPolicy, Throttle

            if retry is not None and not isinstance(retry, RetryPolicy):
                retry = RetryPolicy.from_mapping(retry)
            if throttle is not None and not isinstance(throttle, Throttle):
                throttle = Throttle.from_mapping(throttle)
        self.retry: RetryPolicy | None = retry if retry is None or retry.attempts > 1 else None
        self.throttle: Throttle | None = throttle
        if dedup_window is not None:
            dedup_window = check_seconds(dedup_window, "dedup_window", maximum=MAX_WINDOW, zero=True)
        self.dedup_window = float(dedup_window) if dedup_window else None

    @property
    def has_policy(self) -> bool:
        return self.retry is not None or self.throttle is not None or self.dedup_window is not None

    @property
    def admits(self) -> bool:
        """Whether alerts pass an admission step (de-duplication or throttling)."""
        return self.dedup_window is not None or self.throttle is not None

    def skip_reason(self, alert: Alert) -> str | None:
        """Why this channel does not take ``alert`` (``None`` when it does)."""
        if not self.enabled:
            return "channel is disabled"
        if self.min_rank is not None and alert.severity_rank < self.min_rank:
            return f"severity {alert.severity} is below the channel's minimum {self.min_severity}"
        if self.tags and self.tags.isdisjoint(alert.tags):
            return f"none of the alert's tags is one of {', '.join(sorted(self.tags))}"
        return None

    def __repr__(self) -> str:
        try:
            return f"Route(enabled={self.enabled}, min_severity={self.min_severity!r}, timeout={self.timeout})"
        except Exception:  # noqa: BLE001 - half-built (TracebackException(capture_locals=True))
            return "Route(?)"


class RoutingGate:
    """The routing rule as an admission gate: a channel's :class:`Route` says whether it takes
    the alert. A resolve of something the channel delivered (``delivered``) passes whatever the
    route says now: the channel that paged hears that it is over."""

    name = "routing"
    __slots__ = ("routes",)

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = routes

    def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict:
        route = self.routes.get(channel)
        why = route.skip_reason(alert) if route is not None and not delivered else None
        return ADMIT if why is None else Verdict.skip("routing", detail=why)


def skipped(name: str, verdict: Verdict, now: float = 0.0) -> ChannelOutcome:
    """The outcome of a channel that a gate's ``verdict`` kept the alert from (see :data:`REASONS
    <alert_infra.lifecycle.gates.REASONS>`): ``status="skipped"``, ``suppressed_by`` the gate's
    reason, ``reason`` its sentence; a throttle says when a slot frees (``retry_after``). A
    ``held`` verdict (grouping) gives ``status="held"`` (``suppressed_by`` ``None``: it is not
    suppressed, it goes out in its group's digest) and ``reason`` says when that is due."""
    if verdict.action == "held":
        due = max((verdict.until or now) - now, 0.0)
        return ChannelOutcome(name, "held", reason=verdict.detail or f"held for its group's digest, due in {due:.1f}s")
    reason = verdict.reason
    detail = verdict.detail or f"{_PAST.get(reason or '', reason)} by {verdict.rule}"
    until = verdict.until
    retry_after = round(max(until - now, 0.0), 3) if until is not None and verdict.action == "skip" else None
    return ChannelOutcome(name, "skipped", reason=detail, suppressed_by=reason, retry_after=retry_after)


_PAST = {"silence": "silenced", "inhibit": "inhibited"}


def channel_names(channels: Any) -> list[str] | None:
    """``send(channels=...)``: one name or an iterable of names (``None`` for an empty one);
    anything else is refused by name."""
    if isinstance(channels, str):
        return [channels]
    if isinstance(channels, (bytes, bytearray)) or not hasattr(channels, "__iter__"):
        raise AlertValidationError(
            f"channels: must be a channel name or a list of channel names, got a {type(channels).__name__}"
        )
    names = list(channels)
    for name in names:
        if not isinstance(name, str):
            raise AlertValidationError(f"channels: every channel name must be a string, got a {type(name).__name__}")
    return names or None


def unknown_channel_message(name: str, known: Iterable[str]) -> str:
    """Why ``name`` is not a channel: the known names, and a "did you mean" for a near miss."""
    names = sorted(set(known))
    return f"no channel named {name!r}{did_you_mean(name, names)} (known: {', '.join(names) or 'none'})"


def plan(
    alert: Alert,
    channels: Iterable[str] | str | None,
    available: Sequence[Any],
    routes: Mapping[str, Route],
    default_channels: Sequence[str] | None,
    logger: logging.Logger,
) -> tuple[list[tuple[str, Any, ChannelOutcome | None]], list[ChannelOutcome]]:
    """``(plan, unknown)`` for ``send(alert, channels)``: the channels to consider in configured
    order (``available`` are the dispatcher's channels, each with a ``name``), each with its
    routing verdict as a skip outcome or ``None``; and a failed outcome per name matching none."""
    if channels is None and default_channels is not None:
        channels = default_channels
    if channels is None and not routes:
        return [(c.name, c, None) for c in available], []
    wanted = channel_names(channels) if channels is not None else None
    disabled = [name for name, route in routes.items() if not route.enabled]
    known = {c.name for c in available} | set(disabled)
    gate = RoutingGate(routes)
    planned: list[tuple[str, Any, ChannelOutcome | None]] = []
    for channel in available:
        if wanted is None or channel.name in wanted:
            verdict = gate.check(alert, channel.name, 0.0)
            planned.append((channel.name, channel, None if verdict.admitted else skipped(channel.name, verdict)))
    for name in disabled:
        if wanted is None or name in wanted:
            planned.append((name, None, skipped(name, Verdict.skip("routing", detail="channel is disabled"))))
    missing = [
        ChannelOutcome(
            name,
            "failed",
            error="UnknownChannelError",  # exceptions.UnknownChannelError.__name__
            retryable=False,
            reason=unknown_channel_message(name, known),
        )
        for name in dict.fromkeys(wanted or ())
        if name not in known
    ]
    for outcome in missing:
        logger.warning("alert channel %s does not exist", outcome.name)
    return planned, missing
