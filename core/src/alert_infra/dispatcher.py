"""The :class:`AlertDispatcher`: concurrent, isolated, bounded delivery to every selected channel.

How one dispatch runs (see ``docs/guide/dispatching.md`` and ``docs/guide/bounds.md``):

1. **Select**: the channels named (or the defaults), each with its routing decision.
2. **Deliver**: every selected channel runs :meth:`AlertDispatcher._steps`, the one
   description of a channel's delivery (admission by de-duplication and throttling,
   tries, backoff between them, the final outcome). It is a generator that *yields* what
   it needs done (admit, one try, a wait) and is driven by :func:`_drive` in a worker
   thread for :meth:`~AlertDispatcher.send` or by :func:`_adrive` on the event loop for
   :meth:`~AlertDispatcher.asend`: the policy logic is written once, the two drivers only
   know how to wait (the shape of httpx's ``Auth.auth_flow``).
3. **Wait, bounded**: the caller waits for each channel at most its ``timeout`` (or the
   ``deadline`` when it retries). A channel that overstays is reported as timed out and its
   worker thread is *written off* and replaced (:mod:`alert_infra.pool`), so a hung
   provider never costs the pool capacity; a channel with
   :data:`MAX_OVERDUE_PER_CHANNEL` sends still running past their timeout fails fast
   until one returns. A timed-out send gives up its de-duplication claim at once, and takes
   it again if it turns out to have delivered after all.
4. **Observe**: the audit trail and the ``after_dispatch`` hooks see the redacted alert and
   the result. Their time in the caller is bounded by ``hook_timeout``; a hook that sends
   an alert itself does not run the hooks again for that inner dispatch (no recursion).
"""

from __future__ import annotations

import os
import time
from _thread import allocate_lock  # threading itself is imported when a worker starts
from contextvars import ContextVar

from ._checks import MAX_WINDOW, MAX_WORKERS, check_count, check_seconds
from ._lifecycle import ProcessSingleton
from .alert import Alert
from .exceptions import (
    AlertDeliveryError,
    AlertTransportTimeoutError,
    AlertValidationError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from .result import ChannelOutcome, DeliveryResult, Sent
from .security import redact_and_cut, redact_text, redaction_generation, register_secret

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Generator, Iterable, Mapping, Sequence
    from typing import Any

    from .policies import RetryPolicy, Throttle
    from .pool import Task, WorkerPool
    from .state import StateBackend

    Step = Generator["tuple[int, Any]", Any, ChannelOutcome]

__all__ = ["AlertDispatcher", "Route", "is_retryable_exception"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_WORKERS = 32
#: The longest the caller waits for the audit trail and the ``after_dispatch`` hooks of one
#: dispatch, in seconds (``AlertDispatcher(hook_timeout=...)``); they finish in the background.
DEFAULT_HOOK_TIMEOUT = 1.0
#: Sends of one channel that may still be running past their timeout; beyond it, the channel
#: fails fast ("still running") instead of taking another thread.
MAX_OVERDUE_PER_CHANNEL = 4
#: The longest :meth:`AlertDispatcher.asend` waits for a blocking state backend (Redis) to
#: admit an alert before delivering without throttle and de-duplication (fail open).
STATE_WAIT = 2.0
#: Dispatches whose hooks may wait for a hook thread (all of them busy with hooks that do not
#: return); beyond it, a dispatch's hooks and audit record are dropped and counted
#: (``AlertDispatcher.hooks_dropped``, logged at ERROR).
MAX_QUEUED_HOOKS = 10_000
#: Hook threads that may hang at once (written off and replaced); beyond, slow hooks hold the
#: shared hook pool's 8 threads and later hooks queue.
MAX_OVERDUE_HOOKS = 32
#: The most notification-log entries a dispatcher keeps in memory (the oldest go first).
MAX_LOG_ENTRIES_IN_MEMORY = 100_000
#: Seconds during which a repeat of the same firing alert on a channel is not written to an in-memory
#: notification log again (it is already there, with its handle): the hot path of repeated alerts.
LOG_REFRESH = 60.0
#: The counters of :meth:`AlertDispatcher.stats`, per channel.
STAT_KEYS = ("sent", "failed", "retried", "throttled", "deduplicated", "skipped")
_SUPPRESSED_STAT = {"dedup": "deduplicated", "throttle": "throttled"}  # any other skip counts as "skipped"

# What a step asks its driver for.
_ADMIT, _TRY, _SLEEP = 0, 1, 2

#: Set while the after-dispatch hooks of a dispatch run (in their thread or task): a dispatch
#: made from inside a hook delivers, but does not run the hooks again (no recursion).
_IN_HOOKS: ContextVar[bool] = ContextVar("alert_infra_in_hooks", default=False)


def is_retryable_exception(exc: BaseException) -> bool:
    """Whether a retry could help: everything but :class:`NonRetryableAlertTransportError` (0.1.x rule)."""
    return not isinstance(exc, NonRetryableAlertTransportError)


def _get_logger() -> logging.Logger:
    import logging

    return logging.getLogger("alert_infra")


def _read(obj: Any, attribute: str, default: Any) -> tuple[Any, BaseException | None]:
    """``getattr`` that survives a property raising anything: ``(value, error)``."""
    try:
        return getattr(obj, attribute, default), None
    except Exception as exc:  # noqa: BLE001 - a hostile transport fails its own channel only
        return default, exc


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
        from .alert import severity_rank

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


class _Channel:
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
        "update",
    )

    def __init__(self, transport: Any, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self.policy: Route | None = None  # the route, when it has a delivery policy
        self.overdue = 0  # sends written off and still running
        self.broken: BaseException | None = None  # an attribute that raised: the channel fails alone
        name, error = _read(transport, "name", None)
        self.name = name if isinstance(name, str) and name else type(transport).__name__
        blocking, error2 = _read(transport, "blocking", True)
        self.blocking = bool(blocking) if error2 is None else True
        send, error3 = _read(transport, "send", None)
        self.send = send if callable(send) else None
        asend, error4 = _read(transport, "asend", None)
        self.asend = asend if callable(asend) else None
        update, _ = _read(transport, "update", None)  # update(alert, handle): edits a delivered message
        self.update = update if callable(update) else None
        fields, error5 = _read(transport, "secret_fields", ())
        bound, _ = _read(transport, "max_send_time", None)
        ok = isinstance(bound, (int, float)) and not isinstance(bound, bool) and 0 < bound < float("inf")
        self.max_send_time: float | None = float(bound) if ok else None
        self.inline = False  # set by settle()
        self.broken = error or error2 or error3 or error4 or error5
        try:
            for field in fields or ():
                value, error = _read(transport, field, None)
                self.broken = self.broken or error
                register_secret(value, owner=transport)
        except Exception as exc:  # noqa: BLE001 - secret_fields that cannot be iterated
            self.broken = self.broken or exc

    def settle(self) -> None:
        """Decide where this channel runs in :meth:`AlertDispatcher.send`: in the caller's thread
        when it never waits on I/O (``blocking = False``) or bounds its own time within the
        channel's timeout (``max_send_time``) and has no retries to wait between; else in a worker
        thread, so the caller can stop waiting. The HTTP layer does not declare ``max_send_time``:
        its total deadline starts after name resolution, which nothing in the process can bound."""
        self_bounded = (
            self.max_send_time is not None
            and self.max_send_time <= self.timeout
            and (self.policy is None or self.policy.retry is None)
        )
        self.inline = self.send is not None and (not self.blocking or self_bounded)


class _Flow:
    """The live state of one channel's delivery: its dedup claim, and whether the caller gave up."""

    __slots__ = ("channel", "alert", "started", "claim", "abandoned", "lock", "routed", "handle")

    def __init__(self, channel: _Channel, alert: Alert, started: float, routed: Any = None) -> None:
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


class AlertDispatcher:
    """Deliver alerts to several transports at once, each isolated from the others.

    Every selected channel runs concurrently in a bounded pool of worker
    threads; one that fails, raises or hangs affects only its own outcome, and
    the caller waits at most ``timeout`` seconds for it. Transports that
    declare ``blocking = False`` (pure in-memory ones such as
    :class:`NoOpTransport`) run in the caller's thread. A transport with only
    ``async asend()`` is run by :meth:`send` on the process's background event
    loop, with the same timeout.

    Args:
        transports: the channels; each needs ``name`` and ``send(alert)`` (or ``async asend(alert)``).
        enabled: when False, :meth:`send` delivers nothing and returns an empty
            result (0.1.x).
        raise_on_failure: raise :class:`AlertDeliveryError` after every channel
            was attempted if any failed (0.1.x).
        logger_: the logger for delivery problems (default ``alert_infra``). Log
            lines carry channel names and exception class names only.
        timeout: the longest the dispatcher waits for one channel, in seconds (at most 3600).
        max_workers: the most worker threads (default 32), not counting threads written off
            because their channel overstayed its timeout (see :mod:`alert_infra.pool`).
        default_channels: channel names used when ``send`` names none (default: all).
        routes: ``{channel name: Route}``: per-channel routing and delivery
            policies (see :meth:`from_config`, which fills these from configuration).
        deadline: the longest one dispatch may take for a channel with retries,
            all tries and waits included (default: ``timeout``).
        state: where throttle budgets and de-duplication windows live: a
            :class:`~alert_infra.state.StateBackend`, ``"memory"`` (default), a
            ``sqlite:///`` file shared by the processes and runs of one machine, or a
            ``redis://`` URL shared by every process (see :mod:`alert_infra.state`).
        audit: an :class:`~alert_infra.audit.AuditTrail` (or anything with an
            ``alert_infra_after_dispatch(alert, result)`` method) that records
            every dispatch of this dispatcher; its failures are logged, never raised.
        hook_timeout: the longest a caller waits for the audit trail and the
            ``after_dispatch`` hooks of one dispatch (default 1 s); slower ones finish
            in the background.
        silences: turn the silence gate on (see :mod:`alert_infra.lifecycle`): a
            :class:`~alert_infra.lifecycle.SilenceStore`, or a list of ``[[silences]]`` tables
            or :class:`~alert_infra.lifecycle.Silence` objects stored in ``lifecycle_state``
            (an empty list: only the silences already stored there, such as the CLI's). Default:
            no gate (no store is read for a firing alert).
        inhibit_rules: turn the inhibition gate on: :class:`~alert_infra.lifecycle.InhibitRule`
            objects or ``[[inhibit_rules]]`` tables (their firing sources kept in ``lifecycle_state``).
        lifecycle_state: where the notification log, the silences and the inhibition sources live
            (``"memory"``, a ``sqlite:///`` URL, a Redis URL or client; a lifecycle ``RecordStore``
            serves its own kind only); default: the same place as ``state`` (this process's memory
            when it is memory).
        lifecycle_prefix: the Redis key prefix of those records (default: the state's prefix
            followed by ``:lifecycle``).
        clock, sleep, random: injection points for tests of the retry timing
            (defaults: :func:`time.monotonic`, :func:`time.sleep`, :func:`random.random`).

    A dispatcher that is dropped without :meth:`close` still releases its worker
    threads and the state it opened; after ``os.fork()`` the child's dispatcher starts
    with an empty pool of its own.

    Example::

        dispatcher = AlertDispatcher([NoOpTransport()])
        result = dispatcher.send(Alert(title="Smoke test", message="Reachable."))
        assert result.ok and result.sent == ("noop",)
    """

    def __init__(
        self,
        transports: Sequence[Any] | None = None,
        *,
        enabled: bool = True,
        raise_on_failure: bool = False,
        logger_: logging.Logger | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_workers: int = DEFAULT_MAX_WORKERS,
        default_channels: Iterable[str] | None = None,
        routes: Mapping[str, Route] | None = None,
        deadline: float | None = None,
        state: StateBackend | str | None = None,
        clock: Any = None,
        sleep: Any = None,
        random: Any = None,
        audit: Any = None,
        hook_timeout: float = DEFAULT_HOOK_TIMEOUT,
        silences: Any = None,
        inhibit_rules: Any = None,
        lifecycle_state: Any = None,
        lifecycle_prefix: str | None = None,
    ) -> None:
        self.timeout = check_seconds(timeout, "timeout")
        self.max_workers = check_count(max_workers, "max_workers", maximum=MAX_WORKERS)
        self.hook_timeout = check_seconds(hook_timeout, "hook_timeout", zero=True)
        self.deadline = check_seconds(deadline, "deadline") if deadline is not None else self.timeout
        if transports is not None and (isinstance(transports, (str, bytes)) or not hasattr(transports, "__iter__")):
            raise AlertValidationError(f"transports: must be a list of transports, got a {type(transports).__name__}")
        self.transports = list(transports or [])
        for transport in self.transports:
            send, error = _read(transport, "send", None)
            asend, error2 = _read(transport, "asend", None)
            if not callable(send) and not callable(asend) and error is None and error2 is None:
                raise AlertValidationError(f"transport {type(transport).__name__} has no send(alert) method")
        self.enabled = enabled
        self.raise_on_failure = raise_on_failure
        self._logger = logger_
        self._pool: WorkerPool | None = None
        self._lock = allocate_lock()
        self._channel_key: tuple[int, ...] = ()
        self._channels: list[_Channel] = []
        self._env_plugins: bool | None = None
        if default_channels is not None and isinstance(default_channels, str):
            default_channels = [default_channels]
        self.default_channels = list(default_channels) if default_channels is not None else None
        self.routes: dict[str, Route] = dict(routes or {})
        for name, route in self.routes.items():
            if not isinstance(route, Route):
                raise AlertValidationError(f"routes[{name!r}]: must be a Route, got a {type(route).__name__}")
        self._own_state = isinstance(state, str)
        self._state: StateBackend | None = state if state is not None and not isinstance(state, str) else None
        if isinstance(state, str):
            from .state import open_state

            self._state = open_state(state)
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._random = random
        self.audit = audit
        self._stats: dict[str, dict[str, int]] = {}
        self._stats_lock = allocate_lock()
        self.hooks_dropped = 0
        #: Called as ``on_sent(channel_name)`` in the thread that delivered, the moment a channel
        #: succeeds (before the dispatch ends): queued delivery writes its idempotency record
        #: here, so a worker killed while another channel is still sending does not lose it.
        #: Its exceptions are logged, never raised into delivery.
        self.on_sent: Any = None
        # The alert lifecycle (issue 22): the notification log (opened on the first delivery)
        # and the silence gate (only when silences are given: otherwise a firing alert reads no store).
        self._lifecycle_state = lifecycle_state
        self._quiet = _QuietLogger(self)  # warnings of lifecycle stores: once a minute each
        self._lifecycle_prefix = lifecycle_prefix
        self._nlog: Any = None
        # (channel, log key) -> (handle, monotonic time) of the last firing write to an in-memory log
        self._logged: dict[tuple[str, str], tuple[Any, float]] | None = None
        self._silence_gate: Any = None
        if silences is not None:
            self._silence_gate = self._make_silence_gate(silences)
        self._inhibit_gate: Any = None
        if inhibit_rules is not None:
            from .lifecycle import InhibitGate, InhibitRule, inhibit_rules_from_config

            rules = list(inhibit_rules)
            tables = [rule for rule in rules if not isinstance(rule, InhibitRule)]
            parsed = iter(inhibit_rules_from_config(tables))
            rules = [rule if isinstance(rule, InhibitRule) else next(parsed) for rule in rules]
            self._inhibit_gate = InhibitGate(rules, self._lifecycle_store("inhibit_sources"), logger_=self._quiet)
        self._gated = self._silence_gate is not None or self._inhibit_gate is not None
        import weakref

        from ._lifecycle import on_fork_in_child

        # Dropped without close(): its worker threads (which hold the pool, never the dispatcher)
        # stop, and a state it opened itself is closed.
        self._resources = _Resources(self._state if self._own_state else None)
        self._finalizer: Any = weakref.finalize(self, self._resources.release)
        on_fork_in_child(self, AlertDispatcher._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: fresh locks (another thread may have held them), no overdue sends
        (the threads running them stayed in the parent). The pool and the state reset themselves."""
        self._lock = allocate_lock()
        self._stats_lock = allocate_lock()
        for channel in self._channels:
            channel.overdue = 0

    # -- helpers ---------------------------------------------------------------------------
    @property
    def logger(self) -> logging.Logger:
        if self._logger is None:
            self._logger = _get_logger()
        return self._logger

    @logger.setter
    def logger(self, value: logging.Logger) -> None:
        self._logger = value

    def _all_channels(self) -> list[_Channel]:
        # ``transports`` is a public list (0.1.x); rebuild channels if it changed. Built aside
        # and swapped in under the lock, so two first dispatches at once see one list each.
        key = tuple(map(id, self.transports))
        if key == self._channel_key:
            return self._channels
        with self._lock:
            if key != self._channel_key:
                channels = []
                for transport in self.transports:
                    channel = _Channel(transport, self.timeout)
                    route = self.routes.get(channel.name)
                    if route is not None and route.timeout is not None:
                        channel.timeout = route.timeout
                    if route is not None and route.has_policy:
                        channel.policy = route
                    channel.settle()
                    channels.append(channel)
                self._channels = channels
                self._channel_key = key
            return self._channels

    def _workers(self) -> WorkerPool:
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    from .pool import WorkerPool

                    pool = self._pool = WorkerPool(self.max_workers)
                    self._resources.pool = pool
        return pool

    def pool_stats(self) -> dict[str, int]:
        """The worker pool's counters (see :meth:`alert_infra.pool.WorkerPool.stats`): threads,
        idle, queued, overdue (written off, still running), written_off and started in all."""
        pool = self._pool
        if pool is None:
            return {"threads": 0, "idle": 0, "queued": 0, "overdue": 0, "written_off": 0, "started": 0}
        return pool.stats()

    def _select(
        self, alert: Any, channels: Iterable[str] | str | None
    ) -> tuple[Alert, list[tuple[str, _Channel | None, str | None]], list[ChannelOutcome]]:
        """``(alert, plan, unknown)``: ``plan`` lists ``(name, channel, skip reason)`` in configured order."""
        if not isinstance(alert, Alert):
            raise AlertValidationError(f"send() needs an Alert, got a {type(alert).__name__}")
        if alert.redact_sensitive_data and alert._generation != redaction_generation():
            alert = alert.redacted()  # a secret was registered after the alert was made
        available = self._all_channels()
        routes = self.routes
        if channels is None and self.default_channels is not None:
            channels = self.default_channels
        if channels is None:
            if not routes:
                return alert, [(c.name, c, None) for c in available], []
            wanted = None
        else:
            wanted = _channel_names(channels)
        disabled = [name for name, route in routes.items() if not route.enabled]
        known = {c.name for c in available} | set(disabled)
        plan: list[tuple[str, _Channel | None, str | None]] = []
        for channel in available:
            if wanted is None or channel.name in wanted:
                route = routes.get(channel.name)
                plan.append((channel.name, channel, route.skip_reason(alert) if route is not None else None))
        for name in disabled:
            if wanted is None or name in wanted:
                plan.append((name, None, "channel is disabled"))
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
            self.logger.warning("alert channel %s does not exist", outcome.name)
        return alert, plan, missing

    @staticmethod
    def _assemble(
        plan: list[tuple[str, _Channel | None, Any]], delivered: Iterable[ChannelOutcome]
    ) -> list[ChannelOutcome]:
        results = iter(delivered)
        return [
            next(results)
            if skip is None
            else skip
            if isinstance(skip, ChannelOutcome)  # a lifecycle gate's skip
            else ChannelOutcome(name, "skipped", reason=skip, suppressed_by="routing")
            for name, _, skip in plan
        ]

    def _failure(self, channel: _Channel, exc: BaseException, elapsed: float, attempts: int = 1) -> ChannelOutcome:
        retryable = is_retryable_exception(exc)
        self.logger.warning("alert channel %s failed: %s", channel.name, type(exc).__name__)
        message = redact_and_cut(exc, OUTCOME_REASON_LIMIT).strip()  # redacted first, then cut
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, RetryableAlertTransportError) else None
        return ChannelOutcome(
            channel.name,
            "failed",
            attempts=attempts,
            elapsed=elapsed,
            error=type(exc).__name__,
            retryable=retryable,
            retry_after=retry_after if isinstance(retry_after, (int, float)) else None,
            reason=message or None,
        )

    def _refusal(self, channel: _Channel, started: float) -> ChannelOutcome | None:
        """An outcome for a channel that cannot take an alert now, without using a thread."""
        if channel.broken is not None:
            exc = channel.broken
            self.logger.warning("alert channel %s is broken: %s", channel.name, type(exc).__name__)
            return ChannelOutcome(
                channel.name,
                "failed",
                error=type(exc).__name__,
                retryable=False,
                reason=f"the transport's attributes raise {type(exc).__name__}",
            )
        if channel.overdue >= MAX_OVERDUE_PER_CHANNEL:
            self.logger.warning("alert channel %s is hung: %d sends still running", channel.name, channel.overdue)
            return ChannelOutcome(
                channel.name,
                "failed",
                elapsed=time.perf_counter() - started,
                error=AlertTransportTimeoutError.__name__,
                retryable=True,
                reason=f"not started: {channel.overdue} earlier sends to this channel are still running past "
                f"their {channel.timeout:g}s timeout",
            )
        return None

    # -- the one description of a channel's delivery -----------------------------------------
    def _steps(self, flow: _Flow, alert: Alert) -> Step:
        """Admission, tries and backoff for one channel: yields what it needs, returns the outcome."""
        channel = flow.channel
        route = channel.policy
        if route is not None and route.admits and not flow.routed:
            skip, claim = yield _ADMIT, route
            if skip is not None:
                return skip  # type: ignore[no-any-return]
            with flow.lock:
                if flow.abandoned:  # the caller gave up while we were admitted: hand it back
                    self._release(claim)
                else:
                    flow.claim = claim
        deadline_at = self._clock() + self.deadline if route is not None and route.retry is not None else 0.0
        tries = 0
        while True:
            tries += 1
            note, exc = yield _TRY, tries
            if exc is None:
                return self._sent(flow, note, tries)
            delay = self._retry_delay(route, tries, exc, deadline_at) if route is not None else None
            if delay is None:
                self._give_up(flow)
                return self._failure(channel, exc, time.perf_counter() - flow.started, attempts=tries)
            self.logger.info(
                "alert channel %s: try %d failed (%s); retrying in %.2fs",
                channel.name,
                tries,
                type(exc).__name__,
                delay,
            )
            yield _SLEEP, delay

    def _sent(self, flow: _Flow, note: object, tries: int) -> ChannelOutcome:
        # ``send`` returns None by contract; a transport may return a short string saying how it
        # delivered (which email provider, say): it becomes the outcome's ``detail``, redacted. Or a
        # ``Sent`` with that detail and the provider's handle for the message (kept on the outcome).
        handle: dict[str, Any] | None = None
        if isinstance(note, Sent):
            handle = note.handle
            note = note.detail
        detail = redact_text(note)[:300] if isinstance(note, str) and note else None
        with flow.lock:
            abandoned = flow.abandoned
        if abandoned:
            # Delivered after the caller reported a timeout: the claim it gave up is taken again,
            # so the alert's next occurrence within the window is the duplicate it really is.
            self.logger.info(
                "alert channel %s delivered %.1fs after its timeout",
                flow.channel.name,
                time.perf_counter() - flow.started,
            )
            self._reclaim(flow.channel, flow)
        if flow.alert.status != "acknowledged":  # an acknowledge leaves the incident open
            self._log_delivery(flow, handle)
        listener = self.on_sent
        if listener is not None:
            try:
                listener(flow.channel.name)
            except Exception as exc:  # noqa: BLE001 - a listener never breaks delivery
                self.logger.warning("alert on_sent listener failed for %s: %s", flow.channel.name, type(exc).__name__)
        return ChannelOutcome(
            flow.channel.name,
            "sent",
            attempts=tries,
            elapsed=time.perf_counter() - flow.started,
            detail=detail,
            handle=handle,
        )

    def _give_up(self, flow: _Flow) -> None:
        with flow.lock:
            claim, flow.claim = flow.claim, None
        self._release(claim)

    def _abandon(self, flow: _Flow) -> None:
        """The caller stopped waiting: the send's fate is unknown, so it holds no claim."""
        with flow.lock:
            flow.abandoned = True
            claim, flow.claim = flow.claim, None
        self._release(claim)

    def _reclaim(self, channel: _Channel, flow: _Flow) -> None:
        route = channel.policy
        if route is None or route.dedup_window is None:
            return
        # Only the claim: the alert already spent its throttle budget when it was admitted.
        self._admit(channel.name, Route(dedup_window=route.dedup_window), flow.alert)

    def _attempt(self, channel: _Channel, alert: Alert, handle: Any = None) -> tuple[object, BaseException | None]:
        """One synchronous try: ``(note, None)`` or ``(None, error)``; never raises. With the
        provider's ``handle`` of a delivered alert (a routed resolve), ``update`` when the
        transport has it."""
        try:
            if handle is not None and channel.update is not None:
                return channel.update(alert, handle), None
            if channel.send is not None:
                return channel.send(alert), None
            assert channel.asend is not None
            from .pool import loop_thread

            try:
                return loop_thread().run(channel.asend(alert), channel.timeout), None
            except TimeoutError:
                return None, AlertTransportTimeoutError(f"no answer within {channel.timeout:g}s")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - each transport is isolated; sys.exit() in a transport is its bug
            return None, exc
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt) and _in_main_thread():
                raise  # Ctrl-C in the caller's own thread is the user's, not the channel's
            return None, exc

    def _run(self, flow: _Flow, alert: Alert) -> ChannelOutcome:
        """The synchronous driver of :meth:`_steps` (in a worker thread, or inline)."""
        steps = self._steps(flow, alert)
        reply: Any = None
        channel = flow.channel
        try:
            while True:
                kind, argument = steps.send(reply)
                if kind == _TRY:
                    reply = self._attempt(channel, alert, flow.handle)
                elif kind == _ADMIT:
                    reply = self._admit(channel.name, argument, alert)
                else:
                    self._sleep(argument)
                    reply = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _arun(self, flow: _Flow, alert: Alert) -> ChannelOutcome:
        """The asyncio driver of :meth:`_steps`: awaits what :meth:`_run` blocks on."""
        import asyncio

        steps = self._steps(flow, alert)
        reply: Any = None
        channel = flow.channel
        try:
            while True:
                kind, argument = steps.send(reply)
                if kind == _TRY:
                    reply = await self._aattempt(channel, alert, flow.handle)
                elif kind == _ADMIT:
                    reply = await self._aadmit(channel.name, argument, alert)
                elif self._sleep is time.sleep:
                    await asyncio.sleep(argument)
                    reply = None
                else:  # an injected sleeper (tests)
                    self._sleep(argument)
                    reply = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _aattempt(
        self, channel: _Channel, alert: Alert, handle: Any = None
    ) -> tuple[object, BaseException | None]:
        """One try on the event loop: native ``asend``, inline for in-memory transports, else a
        worker thread (written off if it overstays). ``update(alert, handle)`` (synchronous) runs
        like a blocking ``send``."""
        import asyncio

        timeout = channel.timeout
        if channel.update is None:
            handle = None
        try:
            if channel.asend is not None and handle is None:
                return await asyncio.wait_for(channel.asend(alert), timeout), None
            if not channel.blocking:
                return self._attempt(channel, alert, handle)
            pool = self._workers()
            task = pool.submit(self._attempt, channel, alert, handle)
            try:
                done = await _wait_task(task, timeout)
            except asyncio.CancelledError:
                self._write_off(pool, channel, task, None)
                raise
            if not done:
                state = self._write_off(pool, channel, task, None)
                if state != "done":
                    verb = "not started" if state == "cancelled" else "no answer"
                    return None, AlertTransportTimeoutError(f"{verb} within {timeout:g}s")
            if task.error is not None:
                return None, task.error
            return task.value  # type: ignore[no-any-return]
        except asyncio.TimeoutError:
            return None, AlertTransportTimeoutError(f"no answer within {timeout:g}s")
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - each transport is isolated
            return None, exc

    # -- delivery policies ---------------------------------------------------------------------
    @property
    def state(self) -> StateBackend:
        """The backend of throttle budgets and de-duplication windows (memory unless configured)."""
        state = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    from .state import MemoryState

                    self._state = MemoryState(clock=self._clock)
                state = self._state
        return state

    def admit(self, name: str, route: Route, alert: Alert) -> ChannelOutcome | None:
        """Apply ``route``'s de-duplication and throttling to ``alert`` under the name ``name``,
        with this dispatcher's state: the skip outcome, or ``None`` when the alert may go.

        For senders other than the dispatcher's own channels (such as
        :class:`~alert_infra.logging.AlertHandler`); the de-duplication claim is kept.
        """
        return self._admit(name, route, alert)[0]

    def _admit(self, name: str, route: Route, alert: Alert) -> tuple[ChannelOutcome | None, Any]:
        """De-duplication, then throttling: ``(skip outcome or None, dedup claim)``. Fails open."""
        key = None
        if route.dedup_window is not None:
            key = f"dd:{name}:{alert.status}:{alert.fingerprint}"
        throttle = route.throttle
        buckets = throttle.buckets(name, alert.fingerprint) if throttle is not None else ()
        try:
            verdict, token, wait, index = self.state.admit(key, route.dedup_window or 0.0, buckets)
        except Exception as exc:  # noqa: BLE001 - a broken state backend must not cost the alert: fail open
            self.logger.warning(
                "alert state backend failed for channel %s (%s): delivering without throttle and de-duplication",
                name,
                type(exc).__name__,
            )
            return None, None
        if verdict == "duplicate":
            return ChannelOutcome(
                name,
                "skipped",
                reason=f"duplicate: the same alert went to this channel within the last {route.dedup_window:g}s",
                suppressed_by="dedup",
            ), None
        if verdict == "throttled" and throttle is not None:
            return ChannelOutcome(
                name,
                "skipped",
                reason=f"throttled: over {throttle.describe(index)}; a slot frees in {wait:.1f}s",
                suppressed_by="throttle",
                retry_after=round(wait, 3),
            ), None
        return None, (key, token) if key is not None and token is not None else None

    async def _aadmit(self, name: str, route: Route, alert: Alert) -> tuple[ChannelOutcome | None, Any]:
        if not self.state.blocking:
            return self._admit(name, route, alert)
        # Never wait on a network store in the event loop's thread, nor longer than STATE_WAIT.
        pool = self._workers()
        task = pool.submit(self._admit, name, route, alert)
        if await _wait_task(task, STATE_WAIT) and task.error is None:
            return task.value  # type: ignore[no-any-return]
        if not task.done:
            pool.write_off(task, _release_late_claim(self))
        self.logger.warning(
            "alert state backend did not answer within %gs for channel %s: delivering without throttle and "
            "de-duplication",
            STATE_WAIT,
            name,
        )
        return None, None

    # -- the alert lifecycle (issue 22): silences, the notification log, resolves routed ------------
    def _lifecycle_spec(self) -> Any:
        """Where the lifecycle records live: ``lifecycle_state``, else beside ``state``."""
        if self._lifecycle_state is not None:
            return self._lifecycle_state
        state = self._state
        if state is None or type(state).__name__ == "MemoryState":
            return None  # this process's memory
        from .state import RedisState, SQLiteState

        if isinstance(state, SQLiteState):
            return "sqlite:///" + os.path.abspath(state.path).lstrip("/")
        if isinstance(state, RedisState):
            return state._client  # its bounded timeouts; keys under the state's prefix
        return None

    def _lifecycle_store(self, kind: str) -> Any:
        """The record store of one ``kind`` of lifecycle records (see ``lifecycle_state``). One
        outside this process is behind a circuit breaker: a store that failed is not asked again for
        the state's ``retry_interval`` (5 s by default), so a silent Redis costs one timeout per
        interval, not one per alert."""
        from .lifecycle import MemoryStore, RecordStore, open_store
        from .lifecycle.stores import GuardedStore

        spec = self._lifecycle_spec()
        if isinstance(spec, RecordStore):
            return spec if spec.kind == kind else open_store(None, kind)
        store = self._open_lifecycle(spec, kind)
        if isinstance(store, MemoryStore):
            return store
        state = self._state
        down = None
        if self._lifecycle_state is None and hasattr(state, "_down_until"):  # the Redis state's own server

            def down() -> bool:
                return time.monotonic() < (getattr(state, "_down_until", 0.0) or 0.0)

        return GuardedStore(store, getattr(state, "_retry_interval", 5.0) or 5.0, down=down)

    def _open_lifecycle(self, spec: Any, kind: str) -> Any:
        from .lifecycle import open_store

        options = {}
        if spec is not None and (not isinstance(spec, str) or spec.startswith(("redis://", "rediss://", "unix://"))):
            prefix = self._lifecycle_prefix or f"{getattr(self._state, '_prefix', 'alert-infra')}:lifecycle"
            options["prefix"] = prefix
        return open_store(spec, kind, **options)

    def _make_silence_gate(self, silences: Any) -> Any:
        from .lifecycle import Silence, SilenceGate, SilenceStore, silences_from_config

        if isinstance(silences, SilenceGate):
            return silences
        if isinstance(silences, SilenceStore):
            return SilenceGate(silences, logger_=self._quiet)
        if isinstance(silences, (str, bytes)) or not hasattr(silences, "__iter__"):
            raise AlertValidationError("silences: a SilenceStore, or a list of [[silences]] tables or Silence objects")
        store = SilenceStore(self._lifecycle_store("silences"))
        items = list(silences)
        tables = [item for item in items if not isinstance(item, Silence)]
        silences_from_config(tables)  # a configuration error raises here, before any store is touched
        try:
            store.load_config(tables)
            for item in items:
                if isinstance(item, Silence):
                    store.add(item, replace=False)
        except Exception as exc:  # noqa: BLE001 - an unreachable store: the gate fails open per alert
            self.logger.warning("alert silences could not be stored (%s)", type(exc).__name__)
        return SilenceGate(store, logger_=self._quiet)

    @property
    def silences(self) -> Any:
        """The :class:`~alert_infra.lifecycle.SilenceStore` of the silence gate (``None``: no gate)."""
        gate = self._silence_gate
        return gate.silences if gate is not None else None

    @property
    def notification_log(self) -> Any:
        """The :class:`~alert_infra.lifecycle.NotificationLog`: per fingerprint and channel, what was
        delivered and the provider's handle (opened on first use, in ``lifecycle_state``)."""
        log = self._nlog
        if log is None:
            with self._lock:
                if self._nlog is None:
                    from .lifecycle import MemoryStore, NotificationLog

                    spec = self._lifecycle_spec()
                    if spec is None or spec == "memory":
                        # Bounded: a process sending endless distinct alerts keeps the newest entries.
                        spec = MemoryStore("nlog", max_records=MAX_LOG_ENTRIES_IN_MEMORY, copy=False)
                        self._logged = {}  # this process alone writes it: repeats can skip the write
                        self._nlog = NotificationLog(spec)
                    else:
                        self._nlog = NotificationLog(self._lifecycle_store("nlog"))
                log = self._nlog
        return log

    def _log_delivery(self, flow: _Flow, handle: Any) -> None:
        """Record a delivery in the notification log (firing: the fingerprint now firing on the
        channel; resolved: no longer). Never raises: a log that fails costs a later resolve its
        routing (it is then skipped as unmatched), never this delivery."""
        fingerprint = flow.alert.fingerprint
        key = "fp:" + fingerprint  # lifecycle.nlog.fingerprint_key: imported by nothing on this path
        name = flow.channel.name
        try:
            log = self.notification_log
            logged = self._logged
            if flow.alert.status == "firing":
                now = time.monotonic()
                if logged is not None:
                    last = logged.get((name, key))
                    if last is not None and (handle is None or handle == last[0]) and now - last[1] < LOG_REFRESH:
                        return  # already in this process's log, with this handle
                log.record_delivery(fingerprint, name, "firing", handle)
                if logged is not None:
                    if len(logged) >= 10_000:
                        logged.clear()
                    logged[(name, key)] = (handle, now)
            else:
                if logged is not None:
                    logged.pop((name, key), None)
                log.record_delivery(fingerprint, name, "resolved", handle)
        except Exception as exc:  # noqa: BLE001 - never costs the delivery
            self._quiet.warning(
                "alert notification log failed for channel %s (%s)", flow.channel.name, type(exc).__name__
            )

    def _observe_source(self, gate: Any, alert: Alert, now: float, channel: str) -> None:
        try:
            gate.observe(alert, now, channel)
        except Exception as exc:  # noqa: BLE001 - a failing store must not stop alerts
            self.logger.warning("alert inhibition sources could not be written (%s)", type(exc).__name__)

    def _gate(
        self, alert: Alert, plan: list[tuple[str, _Channel | None, Any]], channels: Any
    ) -> tuple[list[tuple[str, _Channel | None, Any]], dict[str, Any] | None]:
        """The lifecycle gates of one alert, per channel: ``(plan, routed)``.

        A resolve or acknowledge goes to exactly the channels whose notification log shows the
        firing alert delivered, whatever routing and silences say now (``routed``: channel name ->
        its log entry); the other channels skip it as ``"unmatched"``. A firing alert meets the
        silence gate on every channel that routing selected."""
        now = time.time()
        inhibit = self._inhibit_gate
        if alert.status == "firing":
            silence = self._silence_gate
            gated = []
            for name, channel, skip in plan:
                if skip is None and channel is not None:
                    verdict = inhibit.check(alert, name, now) if inhibit is not None else None
                    if verdict is not None and not verdict.admitted:
                        skip = ChannelOutcome(
                            name, "skipped", reason=f"inhibited by {verdict.rule}", suppressed_by="inhibit"
                        )
                    elif silence is not None:
                        verdict = silence.check(alert, name, now)
                        if not verdict.admitted:
                            skip = ChannelOutcome(
                                name, "skipped", reason=f"silenced by {verdict.rule}", suppressed_by="silence"
                            )
                elif inhibit is not None:
                    self._observe_source(inhibit, alert, now, name)  # a source routed nowhere still inhibits
                gated.append((name, channel, skip))
            return gated, None
        from .lifecycle.nlog import fingerprint_key

        fingerprint = alert.fingerprint
        key = fingerprint_key(fingerprint)
        if channels is None:  # every configured channel, whatever the default channels say now
            plan = [(c.name, c, None) for c in self._all_channels()] + [p for p in plan if p[1] is None]
        try:
            log = self.notification_log
            entries = {name: log.get(key, name) for name, channel, _ in plan if channel is not None}
        except Exception as exc:  # noqa: BLE001 - an unreadable log: today's routing (a stray resolve beats a lost one)
            self._quiet.warning(
                "alert notification log could not be read (%s): the %s alert follows routing",
                type(exc).__name__,
                alert.status,
            )
            return plan, None
        routed: dict[str, Any] = {}
        gated = []
        for name, channel, skip in plan:
            if inhibit is not None:
                self._observe_source(inhibit, alert, now, name)  # a resolved source stops inhibiting
            entry = entries.get(name)
            if channel is not None and entry is not None and fingerprint in entry.firing:
                routed[name] = entry
                skip = None
            elif channel is not None:
                skip = ChannelOutcome(
                    name,
                    "skipped",
                    reason=f"unmatched: this channel did not deliver the firing alert {fingerprint[:16]}",
                    suppressed_by="unmatched",
                )
            gated.append((name, channel, skip))
        return gated, routed

    def _release(self, claim: Any) -> None:
        if claim is None:
            return
        try:
            self.state.release(*claim)
        except Exception as exc:  # noqa: BLE001 - the claim expires by itself
            self.logger.warning("alert state backend failed to release a claim: %s", type(exc).__name__)

    def _retry_delay(self, route: Route, tries: int, exc: BaseException, deadline_at: float) -> float | None:
        retry = route.retry
        if retry is None or tries >= retry.attempts or not is_retryable_exception(exc):
            return None
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, RetryableAlertTransportError) else None
        if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool):
            retry_after = None
        if self._random is None:
            import random

            self._random = random.random
        delay = retry.delay(tries, retry_after, self._random)
        if delay is None or self._clock() + delay >= deadline_at:
            return None
        return float(delay)

    def _wait_bound(self, channel: _Channel) -> float:
        policy = channel.policy
        if policy is not None and policy.retry is not None:
            return max(self.deadline, channel.timeout)
        return channel.timeout

    def _write_off(self, pool: WorkerPool, channel: _Channel, task: Task, flow: _Flow | None) -> str:
        """Stop waiting for a channel's task; count it against the channel while it runs on."""

        def late(_task: Task) -> None:
            with self._stats_lock:
                channel.overdue -= 1

        with self._stats_lock:
            channel.overdue += 1
        state = pool.write_off(task, late)
        if state != "written_off":
            with self._stats_lock:
                channel.overdue -= 1
        if flow is not None and state != "done":
            self._abandon(flow)
        return state

    # -- statistics ---------------------------------------------------------------------------
    def _count(self, outcomes: Iterable[ChannelOutcome]) -> None:
        with self._stats_lock:
            for outcome in outcomes:
                if outcome.error == "UnknownChannelError":
                    continue  # names that match no channel: not a channel, and unbounded in number
                counts = self._stats.get(outcome.name)
                if counts is None:
                    counts = self._stats[outcome.name] = dict.fromkeys(STAT_KEYS, 0)
                if outcome.status == "skipped":
                    key = _SUPPRESSED_STAT.get(outcome.suppressed_by or "", "skipped")
                else:
                    key = outcome.status
                counts[key] += 1
                if outcome.attempts > 1:
                    counts["retried"] += outcome.attempts - 1

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-channel counters since this dispatcher was made (or :meth:`reset_stats`).

        ``{channel: {"sent", "failed", "retried", "throttled", "deduplicated",
        "skipped"}}``; ``retried`` counts extra tries, the others count alerts.
        Only configured channels are counted (a name that matches none is not).
        Counted in this process (a shared ``state`` shares budgets, not statistics).
        """
        with self._stats_lock:
            return {name: dict(counts) for name, counts in self._stats.items()}

    def reset_stats(self) -> None:
        """Set every counter of :meth:`stats` back to zero."""
        with self._stats_lock:
            self._stats.clear()

    def _timeout(self, channel: _Channel, started: float, ran: bool) -> ChannelOutcome:
        self.logger.warning("alert channel %s timed out: %s", channel.name, AlertTransportTimeoutError.__name__)
        bound = self._wait_bound(channel)
        reason = f"no answer within {bound:g}s" if ran else f"not started within {bound:g}s: every worker was busy"
        return ChannelOutcome(
            channel.name,
            "failed",
            attempts=1 if ran else 0,
            elapsed=time.perf_counter() - started,
            error=AlertTransportTimeoutError.__name__,
            retryable=True,
            reason=reason,
        )

    def _raise_if_needed(self, result: DeliveryResult) -> None:
        if result.failed and self.raise_on_failure:
            raise AlertDeliveryError(f"alert delivery failed for: {', '.join(result.failed)}", result=result)

    def _hooks(self) -> Any:
        from . import plugins

        host = plugins.peek_plugin_host()
        if host is None and self._env_plugins is None:
            # Read once per dispatcher: an environment lookup on every dispatch costs more than
            # the rest of the no-hook path.
            self._env_plugins = bool(os.environ.get("ALERT_INFRA_PLUGINS"))
        if host is None and self._env_plugins:
            host = plugins.get_plugin_host()
        if host is None or not host.has_after_dispatch:
            return None
        return host

    # -- sync ----------------------------------------------------------------------------------
    def send(
        self,
        alert: Alert,
        channels: Iterable[str] | str | None = None,
        *,
        transport_names: Iterable[str] | None = None,
    ) -> DeliveryResult:
        """Deliver ``alert`` to every channel (or those named in ``channels``) and report.

        Args:
            alert: the alert.
            channels: channel names to use (default: all). ``transport_names`` is
                the 0.1.x name of this argument. A name that matches no channel is
                reported as a failed outcome rather than ignored.

        Returns:
            a :class:`DeliveryResult`; never raises for delivery problems unless
            ``raise_on_failure`` is set.

        Raises:
            AlertValidationError: ``alert`` is not an :class:`Alert`, or ``channels`` is not
                a channel name or a list of them.
        """
        if not self.enabled:
            return DeliveryResult()
        if channels is None:
            channels = transport_names
        alert, plan, outcomes = self._select(alert, channels)
        routed: dict[str, Any] | None = None
        if self._gated or alert.status != "firing":
            plan, routed = self._gate(alert, plan, channels)
        selected = [channel for _, channel, skip in plan if skip is None and channel is not None]
        started = time.perf_counter()
        if len(selected) == 1 and selected[0].inline:
            channel = selected[0]
            flow = _Flow(channel, alert, started, routed.get(channel.name) if routed else None)
            delivered = [self._refusal(channel, started) or self._run(flow, alert)]
        elif selected:
            delivered = self._deliver(selected, alert, started, routed)
        else:
            delivered = []
        # Unknown names first, then the configured channel order, however they finished.
        outcomes.extend(self._assemble(plan, delivered) if len(plan) != len(delivered) else delivered)
        self._count(outcomes)
        result = DeliveryResult.from_outcomes(outcomes)
        self._observe(alert, result)
        self._raise_if_needed(result)
        return result

    def _deliver(
        self, selected: list[_Channel], alert: Alert, started: float, routed: dict[str, Any] | None = None
    ) -> list[ChannelOutcome]:
        pool = None
        running: list[tuple[_Channel, _Flow | None, Task | ChannelOutcome | None]] = []
        # In the caller's thread: the in-memory channels, and at most one self-bounded one (the
        # last): the others are in flight meanwhile, so the caller's thread is not idle.
        self_bounded = [c for c in selected if c.inline and c.blocking]
        in_caller = self_bounded[-1] if self_bounded else None
        for channel in selected:
            refusal = self._refusal(channel, started)
            if refusal is not None:
                running.append((channel, None, refusal))
            elif not channel.inline or (channel.blocking and channel is not in_caller):
                if pool is None:
                    pool = self._workers()
                new = _Flow(channel, alert, started, routed.get(channel.name) if routed else None)
                running.append((channel, new, pool.submit(self._run, new, alert)))
            else:
                running.append(
                    (channel, _Flow(channel, alert, started, routed.get(channel.name) if routed else None), None)
                )
        delivered: list[ChannelOutcome] = []
        inline = {id(c): self._run(f, alert) for c, f, t in running if t is None and f is not None}
        for channel, flow, task in running:
            if isinstance(task, ChannelOutcome):
                delivered.append(task)
            elif task is None:
                delivered.append(inline[id(channel)])
            else:
                assert pool is not None and flow is not None
                remaining = self._wait_bound(channel) - (time.perf_counter() - started)
                if not task.wait(remaining):
                    # First cancel what has not started and is out of time too: writing this task
                    # off frees a thread, which must not start a send whose caller already gave up.
                    elapsed = time.perf_counter() - started
                    for other, _, queued in running:
                        if queued is not task and isinstance(queued, type(task)) and self._wait_bound(other) <= elapsed:
                            pool.cancel(queued)
                    state = self._write_off(pool, channel, task, flow)
                    if state != "done":
                        delivered.append(self._timeout(channel, started, state == "written_off"))
                        continue
                if task.cancelled:
                    delivered.append(self._timeout(channel, started, False))
                elif task.error is not None:  # _run never raises; a BaseException that got through
                    delivered.append(self._failure(channel, task.error, time.perf_counter() - started))
                else:
                    delivered.append(task.value)
        return delivered

    # -- observation: the audit trail and the after_dispatch hooks -------------------------------
    def _observe(self, alert: Alert, result: DeliveryResult) -> None:
        """Record and announce a dispatch, the caller waiting at most ``hook_timeout``."""
        audit = self.audit
        host = None if _IN_HOOKS.get() else self._hooks()
        if audit is None and host is None:
            return
        redacted = alert.redacted()
        if audit is not None and getattr(audit, "nonblocking", False):
            self._record(audit, redacted, result)  # queues the write and returns (AuditTrail)
            audit = None
        if audit is None and host is None:
            return
        pool = self._hook_pool()
        if not self._hooks_admitted(pool):
            return
        task = pool.submit(self._observe_now, audit, host, redacted, result, time.perf_counter() + self.hook_timeout)
        if not task.wait(self.hook_timeout):
            self._leave_hooks(pool, task)
            self.logger.warning(
                "alert after-dispatch hooks still running after %gs: they finish in the background", self.hook_timeout
            )

    @staticmethod
    def _leave_hooks(pool: WorkerPool, task: Task) -> None:
        """Stop waiting for a dispatch's hooks. Queued hook work still runs (an audit record is not
        dropped); a running one is written off, so the next dispatches' hooks get a thread, until
        :data:`MAX_OVERDUE_HOOKS` hooks hang at once: then they wait their turn (and, past
        :data:`MAX_QUEUED_HOOKS`, are dropped and counted) rather than take ever more threads."""
        if pool.overdue < MAX_OVERDUE_HOOKS:
            pool.write_off(task, cancel=False)

    def _hooks_admitted(self, pool: WorkerPool) -> bool:
        """Whether the hooks of one more dispatch may queue: hung hooks must not grow memory for ever."""
        if pool.queued < MAX_QUEUED_HOOKS:
            return True
        with self._stats_lock:
            self.hooks_dropped += 1
            dropped = self.hooks_dropped
        if dropped == 1 or dropped % 1000 == 0:
            self.logger.error(
                "alert after-dispatch hooks and audit records dropped: %d so far (%d dispatches wait for hooks "
                "that do not return)",
                dropped,
                pool.queued,
            )
        return False

    def _observe_now(self, audit: Any, host: Any, alert: Alert, result: DeliveryResult, until: float) -> None:
        token = _IN_HOOKS.set(True)
        try:
            if audit is not None:
                self._record(audit, alert, result)
            if host is not None:
                for plugin_name, awaitable in host.after_dispatch(alert, result):
                    from .pool import loop_thread

                    try:
                        loop_thread().run(_await(awaitable), max(until - time.perf_counter(), 0.05))
                    except (Exception, SystemExit) as exc:  # noqa: BLE001 - hooks never break delivery
                        self._hook_failed(plugin_name, exc)
        finally:
            _IN_HOOKS.reset(token)

    def _record(self, audit: Any, alert: Alert, result: DeliveryResult) -> None:
        try:
            audit.alert_infra_after_dispatch(alert, result)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the audit trail never breaks delivery
            self.logger.warning("alert audit trail failed to record: %s", type(exc).__name__)

    def _hook_failed(self, plugin_name: str, exc: BaseException) -> None:
        self.logger.warning("alert_infra_after_dispatch of plugin %s failed: %s", plugin_name, type(exc).__name__)

    @staticmethod
    def _hook_pool() -> WorkerPool:
        return _hook_pool()

    # -- async ----------------------------------------------------------------------------------
    async def asend(
        self,
        alert: Alert,
        channels: Iterable[str] | str | None = None,
        *,
        transport_names: Iterable[str] | None = None,
    ) -> DeliveryResult:
        """Like :meth:`send`, for asyncio code: never blocks the event loop.

        Transports with ``async asend(alert)`` are awaited natively; the others run
        in the worker pool; waits between retries are ``asyncio.sleep``. The audit
        trail and the hooks run off the event loop; awaitables returned by hooks are
        awaited on it; the caller waits for them at most ``hook_timeout``.
        """
        import asyncio

        if not self.enabled:
            return DeliveryResult()
        if channels is None:
            channels = transport_names
        alert, plan, outcomes = self._select(alert, channels)
        routed: dict[str, Any] | None = None
        if self._gated or alert.status != "firing":
            # The gates read the lifecycle stores (the silence index at most once a second; the log
            # for a resolve only): each read is bounded by its store's timeout (0.5 s by default).
            plan, routed = self._gate(alert, plan, channels)
        selected = [channel for _, channel, skip in plan if skip is None and channel is not None]
        started = time.perf_counter()

        async def one(channel: _Channel) -> ChannelOutcome:
            refusal = self._refusal(channel, started)
            if refusal is not None:
                return refusal
            flow = _Flow(channel, alert, started, routed.get(channel.name) if routed else None)
            try:
                return await asyncio.wait_for(self._arun(flow, alert), self._wait_bound(channel))
            except asyncio.TimeoutError:
                self._abandon(flow)
                return self._timeout(channel, started, True)

        delivered = list(await asyncio.gather(*(one(c) for c in selected))) if selected else []
        outcomes.extend(self._assemble(plan, delivered))
        self._count(outcomes)
        result = DeliveryResult.from_outcomes(outcomes)
        await self._aobserve(alert, result)
        self._raise_if_needed(result)
        return result

    async def _aobserve(self, alert: Alert, result: DeliveryResult) -> None:
        import asyncio

        audit = self.audit
        host = None if _IN_HOOKS.get() else self._hooks()
        if audit is None and host is None:
            return
        redacted = alert.redacted()
        if audit is not None and getattr(audit, "nonblocking", False):
            self._record(audit, redacted, result)
            audit = None
        until = time.perf_counter() + self.hook_timeout
        pending: list[tuple[str, Any]] = []
        if audit is not None or host is not None:
            # A database write or a plugin's code: off the event loop's thread, bounded.
            pool = self._hook_pool()
            if not self._hooks_admitted(pool):
                return
            task = pool.submit(self._call_hooks, audit, host, redacted, result)
            if not await _wait_task(task, self.hook_timeout):
                self._leave_hooks(pool, task)
                self.logger.warning(
                    "alert after-dispatch hooks still running after %gs: they finish in the background",
                    self.hook_timeout,
                )
            elif task.value:
                pending = task.value
        for plugin_name, awaitable in pending:
            token = _IN_HOOKS.set(True)
            try:
                await asyncio.wait_for(_await(awaitable), max(until - time.perf_counter(), 0.05))
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - hooks never break delivery
                self._hook_failed(plugin_name, exc)
            finally:
                _IN_HOOKS.reset(token)

    def _call_hooks(self, audit: Any, host: Any, alert: Alert, result: DeliveryResult) -> list[tuple[str, Any]]:
        token = _IN_HOOKS.set(True)
        try:
            if audit is not None:
                self._record(audit, alert, result)
            return list(host.after_dispatch(alert, result)) if host is not None else []
        finally:
            _IN_HOOKS.reset(token)

    # -- configuration ---------------------------------------------------------------------------
    @classmethod
    def from_config(cls, source: Any = None, **kwargs: Any) -> AlertDispatcher:
        """Build a dispatcher from configuration: a mapping, a TOML or ``pyproject.toml`` path, or
        (``None``) the file found for this process (see :mod:`alert_infra.config`).

        Raises:
            AlertConfigurationError: listing every problem of the configuration.
        """
        from .config import load_config

        return load_config(source).build_dispatcher(**kwargs)

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every transport that has ``close()``, stop idle worker threads, close the state
        and the audit trail."""
        for transport in self.transports:
            close, _ = _read(transport, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # noqa: BLE001
                    self.logger.warning(
                        "alert channel %s failed to close: %s", _read(transport, "name", "?")[0], type(exc).__name__
                    )
        pool, self._pool = self._pool, None
        self._resources.pool = self._resources.state = None
        if pool is not None:
            pool.shutdown()
        if self._state is not None:
            self._state.close()
        for records in (
            getattr(self._nlog, "records", None),
            getattr(self.silences, "records", None),
            getattr(self._inhibit_gate, "records", None),
        ):
            if records is not None:
                try:
                    records.close()  # a store may still be used: it reconnects
                except Exception as exc:  # noqa: BLE001
                    self.logger.warning("alert lifecycle store failed to close: %s", type(exc).__name__)
        close_audit = getattr(self.audit, "close", None)
        if callable(close_audit):
            close_audit()

    def __enter__(self) -> AlertDispatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            names = ", ".join(c.name for c in self._all_channels())
            return f"AlertDispatcher(channels=[{names}], enabled={self.enabled})"
        except Exception:  # noqa: BLE001 - half-built (TracebackException(capture_locals=True))
            return "AlertDispatcher(?)"


class _QuietLogger:
    """A logger's ``warning`` at most once a minute per message (a lifecycle store that is down must
    not log once per alert); everything else as the logger does."""

    def __init__(self, dispatcher: AlertDispatcher) -> None:
        import weakref

        self._owner = weakref.ref(dispatcher)  # its logger as it is now (a setter may change it)
        self._last: dict[str, float] = {}  # message -> when it was last logged

    @property
    def _logger(self) -> Any:
        owner = self._owner()
        return owner.logger if owner is not None else _get_logger()

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(message)
        if last is not None and now - last < 60.0:
            return
        if len(self._last) > 1000:
            self._last.clear()
        self._last[message] = now
        self._logger.warning(message, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


def _channel_names(channels: Any) -> list[str] | None:
    """``send(channels=...)``: one name or an iterable of names; anything else is refused by name."""
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


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class _Resources:
    """What a dispatcher dropped without ``close()`` releases (its finalizer holds this, not it)."""

    __slots__ = ("pool", "state")

    def __init__(self, state: StateBackend | None) -> None:
        self.pool: WorkerPool | None = None
        self.state = state

    def release(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown()
        state, self.state = self.state, None
        if state is not None:
            try:
                state.close()
            except Exception:  # noqa: BLE001, S110 - at collection time nobody can be told
                pass


def _release_late_claim(dispatcher: AlertDispatcher) -> Any:
    """For an admission that answered after ``asend`` stopped waiting: hand its claim back."""
    import weakref

    ref = weakref.ref(dispatcher)

    def late(task: Task) -> None:
        owner = ref()
        if owner is not None and task.error is None and task.value:
            owner._release(task.value[1])

    return late


async def _wait_task(task: Task, timeout: float) -> bool:
    """Await a pool task for at most ``timeout`` seconds without blocking the loop."""
    import asyncio

    if task.done:
        return True
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_task: Task) -> None:
        try:
            loop.call_soon_threadsafe(_resolve, waiter)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    task.on_done = wake
    if task.done:  # finished before the callback was in place
        return True
    try:
        await asyncio.wait_for(waiter, timeout)
    except asyncio.TimeoutError:
        return task.done
    return True


def _resolve(waiter: Any) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _make_hook_pool() -> WorkerPool:
    from .pool import WorkerPool

    return WorkerPool(8, name="alert-infra-hooks")


_HOOK_POOL = ProcessSingleton(_make_hook_pool)


def _hook_pool() -> WorkerPool:
    """The process's pool for audit writes and hooks that may block (shared by every dispatcher)."""
    pool: WorkerPool = _HOOK_POOL.get()
    return pool


async def _await(awaitable: Any) -> Any:
    return await awaitable


def unknown_channel_message(name: str, known: Iterable[str]) -> str:
    """Why ``name`` is not a channel: the known names, and a "did you mean" for a near miss."""
    from ._checks import did_you_mean

    names = sorted(set(known))
    return f"no channel named {name!r}{did_you_mean(name, names)} (known: {', '.join(names) or 'none'})"


#: The longest :attr:`ChannelOutcome.reason` (characters): a failure's message, redacted on its full
#: length, then cut (``…`` marks a cut; see :func:`alert_infra.security.redact_and_cut`).
OUTCOME_REASON_LIMIT = 500
