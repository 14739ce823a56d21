"""The :class:`AlertDispatcher`: concurrent, isolated delivery to every selected channel."""

from __future__ import annotations

import os
import time
from _thread import allocate_lock  # threading itself is imported when a worker starts

from .alert import Alert
from .exceptions import (
    AlertDeliveryError,
    AlertTransportTimeoutError,
    AlertValidationError,
    NonRetryableAlertTransportError,
    RetryableAlertTransportError,
)
from .result import ChannelOutcome, DeliveryResult
from .security import _safe_str, redact_text, redaction_generation, register_secret

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable, Mapping, Sequence
    from concurrent.futures import Future
    from typing import Any

    from .policies import RetryPolicy, Throttle
    from .state import StateBackend

__all__ = ["AlertDispatcher", "Route", "is_retryable_exception"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_WORKERS = 32
#: The counters of :meth:`AlertDispatcher.stats`, per channel.
STAT_KEYS = ("sent", "failed", "retried", "throttled", "deduplicated", "skipped")
_SUPPRESSED_STAT = {"dedup": "deduplicated", "throttle": "throttled"}  # any other skip counts as "skipped"


def is_retryable_exception(exc: BaseException) -> bool:
    """Whether a retry could help: everything but :class:`NonRetryableAlertTransportError` (0.1.x rule)."""
    return not isinstance(exc, NonRetryableAlertTransportError)


def _get_logger() -> logging.Logger:
    import logging

    return logging.getLogger("alert_infra")


class Route:
    """Settings of one channel: routing (on or off, minimum severity, tags), its
    timeout, and its delivery policies (see :mod:`alert_infra.policies`).

    Args:
        retry: a :class:`~alert_infra.policies.RetryPolicy` (or its mapping).
        throttle: a :class:`~alert_infra.policies.Throttle` (or its mapping).
        dedup_window: seconds within which the same alert is delivered once.
    """

    __slots__ = ("enabled", "min_severity", "min_rank", "tags", "timeout", "retry", "throttle", "dedup_window")

    def __init__(
        self,
        *,
        enabled: bool = True,
        min_severity: str | None = None,
        tags: Iterable[str] = (),
        timeout: float | None = None,
        retry: RetryPolicy | Mapping[str, Any] | bool | None = None,
        throttle: Throttle | Mapping[str, Any] | bool | None = None,
        dedup_window: float | None = None,
    ) -> None:
        from .alert import severity_rank

        self.enabled = enabled
        self.min_severity = min_severity
        self.min_rank = severity_rank(min_severity) if min_severity else None
        self.tags = frozenset(tags)
        self.timeout = timeout
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
        if dedup_window is not None and (
            isinstance(dedup_window, bool) or not isinstance(dedup_window, (int, float)) or dedup_window < 0
        ):
            raise AlertValidationError(f"dedup_window must be a non-negative number of seconds, got {dedup_window!r}")
        self.dedup_window = float(dedup_window) if dedup_window else None

    @property
    def has_policy(self) -> bool:
        return self.retry is not None or self.throttle is not None or self.dedup_window is not None

    def skip_reason(self, alert: Alert) -> str | None:
        """Why this channel does not take ``alert`` (``None`` when it does)."""
        if not self.enabled:
            return "channel is disabled"
        if self.min_rank is not None and alert.severity_rank < self.min_rank:
            return f"severity {alert.severity} is below the channel's minimum {self.min_severity}"
        if self.tags and self.tags.isdisjoint(alert.tags):
            return f"none of the alert's tags is one of {', '.join(sorted(self.tags))}"
        return None


class _Channel:
    __slots__ = ("name", "transport", "timeout", "blocking", "asend", "policy")

    def __init__(self, transport: Any, timeout: float | None) -> None:
        name = getattr(transport, "name", None)
        self.name = name if isinstance(name, str) and name else type(transport).__name__
        self.transport = transport
        self.timeout = timeout
        self.blocking = bool(getattr(transport, "blocking", True))
        asend = getattr(transport, "asend", None)
        self.asend = asend if callable(asend) else None
        self.policy: Route | None = None  # the route, when it has a delivery policy
        for field in getattr(transport, "secret_fields", ()) or ():
            register_secret(getattr(transport, field, None))


class _WorkerPool:
    """A bounded pool of *daemon* threads.

    ``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter
    exit, so one hung transport would stop the host application from exiting.
    Threads here are created on demand up to ``max_workers`` and never block exit.
    """

    def __init__(self, max_workers: int) -> None:
        import queue

        self.max_workers = max_workers
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = allocate_lock()
        self._threads = 0
        # Exact accounting, so a burst never leaves a task queued behind a busy thread while
        # the pool could still grow: every queued task is matched, at submit time, to an idle
        # thread (reserved), a new thread, or the backlog (only when the pool is full).
        self._idle = 0
        self._backlog = 0

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        from concurrent.futures import Future

        future: Future[Any] = Future()
        with self._lock:
            self._queue.put((future, fn, args))
            if self._idle > 0:
                self._idle -= 1
            elif self._threads < self.max_workers:
                import threading

                self._threads += 1
                thread = threading.Thread(target=self._work, name=f"alert-infra-{self._threads}", daemon=True)
                thread.start()
            else:
                self._backlog += 1
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                    future.set_exception(exc)
            with self._lock:
                if self._backlog > 0:
                    self._backlog -= 1  # take a task that found every thread busy
                else:
                    self._idle += 1

    def shutdown(self) -> None:
        with self._lock:
            threads = self._threads
            self._threads = 0
        for _ in range(threads):
            self._queue.put(None)


class AlertDispatcher:
    """Deliver alerts to several transports at once, each isolated from the others.

    Every selected channel runs concurrently in a bounded pool of worker
    threads; one that fails, raises or hangs affects only its own outcome, and
    the caller waits at most ``timeout`` seconds for it. Transports that
    declare ``blocking = False`` (pure in-memory ones such as
    :class:`NoOpTransport`) run in the caller's thread.

    Args:
        transports: the channels; each needs ``name`` and ``send(alert)``.
        enabled: when False, :meth:`send` delivers nothing and returns an empty
            result (0.1.x).
        raise_on_failure: raise :class:`AlertDeliveryError` after every channel
            was attempted if any failed (0.1.x).
        logger_: the logger for delivery problems (default ``alert_infra``). Log
            lines carry channel names and exception class names only.
        timeout: the longest the dispatcher waits for one channel, in seconds.
        max_workers: the most worker threads (default 32).
        default_channels: channel names used when ``send`` names none (default: all).
        routes: ``{channel name: Route}``: per-channel routing and delivery
            policies (see :meth:`from_config`, which fills these from configuration).
        deadline: the longest one dispatch may take for a channel with retries,
            all tries and waits included (default: ``timeout``).
        state: where throttle budgets and de-duplication windows live: a
            :class:`~alert_infra.state.StateBackend`, ``"memory"`` (default) or a
            ``redis://`` URL shared by every process (see :mod:`alert_infra.state`).
        audit: an :class:`~alert_infra.audit.AuditTrail` (or anything with an
            ``alert_infra_after_dispatch(alert, result)`` method) that records
            every dispatch of this dispatcher; its failures are logged, never raised.
        clock, sleep, random: injection points for tests of the retry timing
            (defaults: :func:`time.monotonic`, :func:`time.sleep`, :func:`random.random`).

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
    ) -> None:
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise AlertValidationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(max_workers, int) or max_workers < 1:
            raise AlertValidationError(f"max_workers must be a positive integer, got {max_workers!r}")
        self.transports = list(transports or [])
        for transport in self.transports:
            if not callable(getattr(transport, "send", None)) and not callable(getattr(transport, "asend", None)):
                raise AlertValidationError(f"transport {type(transport).__name__} has no send(alert) method")
        self.enabled = enabled
        self.raise_on_failure = raise_on_failure
        self._logger = logger_
        self.timeout = float(timeout)
        self.max_workers = max_workers
        self._pool: _WorkerPool | None = None
        self._pool_lock = allocate_lock()
        self._channel_key: tuple[int, ...] = ()
        self._channels: list[_Channel] = []
        self._pending_hooks: set[Any] = set()
        self._env_plugins: bool | None = None
        self.default_channels = list(default_channels) if default_channels is not None else None
        self.routes: dict[str, Route] = dict(routes or {})
        if deadline is not None and (
            not isinstance(deadline, (int, float)) or isinstance(deadline, bool) or deadline <= 0
        ):
            raise AlertValidationError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self.deadline = float(deadline) if deadline is not None else self.timeout
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
        # ``transports`` is a public list (0.1.x); rebuild channels if it changed.
        key = tuple(map(id, self.transports))
        if key != self._channel_key:
            self._channels = []
            for transport in self.transports:
                channel = _Channel(transport, self.timeout)
                route = self.routes.get(channel.name)
                if route is not None and route.timeout is not None:
                    channel.timeout = route.timeout
                if route is not None and route.has_policy:
                    channel.policy = route
                self._channels.append(channel)
            self._channel_key = key
        return self._channels

    def _workers(self) -> _WorkerPool:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = _WorkerPool(self.max_workers)
        return pool

    def _select(
        self, alert: Any, channels: Iterable[str] | str | None
    ) -> tuple[Alert, list[tuple[str, _Channel | None, str | None]], list[ChannelOutcome]]:
        """``(alert, plan, unknown)``: ``plan`` lists ``(name, channel, skip reason)`` in configured order."""
        if not isinstance(alert, Alert):
            raise AlertValidationError(f"send() needs an Alert, got {type(alert).__name__}")
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
            wanted = [channels] if isinstance(channels, str) else list(channels)
            if not wanted:
                wanted = None
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
                error="UnknownChannelError",
                retryable=False,
                reason=f"no channel named {name!r}; known: {', '.join(sorted(known)) or 'none'}",
            )
            for name in dict.fromkeys(wanted or ())
            if name not in known
        ]
        for outcome in missing:
            self.logger.warning("alert channel %s does not exist", outcome.name)
        return alert, plan, missing

    @staticmethod
    def _assemble(
        plan: list[tuple[str, _Channel | None, str | None]], delivered: Iterable[ChannelOutcome]
    ) -> list[ChannelOutcome]:
        results = iter(delivered)
        return [
            ChannelOutcome(name, "skipped", reason=skip, suppressed_by="routing") if skip is not None else next(results)
            for name, _, skip in plan
        ]

    def _failure(self, channel: _Channel, exc: BaseException, elapsed: float, attempts: int = 1) -> ChannelOutcome:
        retryable = is_retryable_exception(exc)
        self.logger.warning("alert channel %s failed: %s", channel.name, type(exc).__name__)
        message = redact_text(_safe_str(exc)).strip()
        return ChannelOutcome(
            channel.name,
            "failed",
            attempts=attempts,
            elapsed=elapsed,
            error=type(exc).__name__,
            retryable=retryable,
            retry_after=getattr(exc, "retry_after", None) if isinstance(exc, RetryableAlertTransportError) else None,
            reason=message[:500] or None,
        )

    def _call(self, channel: _Channel, alert: Alert, started: float) -> ChannelOutcome:
        if channel.policy is not None:
            return self._call_with_policy(channel, channel.policy, alert, started)
        try:
            note = channel.transport.send(alert)
        except Exception as exc:  # noqa: BLE001 - each transport is isolated
            return self._failure(channel, exc, time.perf_counter() - started)
        return _sent(channel, started, note)

    # -- delivery policies ---------------------------------------------------------------------
    @property
    def state(self) -> StateBackend:
        """The backend of throttle budgets and de-duplication windows (memory unless configured)."""
        state = self._state
        if state is None:
            with self._pool_lock:
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
        """De-duplication, then throttling, for the channel (or other user, such as
        :class:`~alert_infra.logging.AlertHandler`) called ``name``: ``(skip outcome or None,
        dedup claim)``."""
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
        if self._random is None:
            import random

            self._random = random.random
        delay = retry.delay(tries, retry_after, self._random)
        if delay is None or self._clock() + delay >= deadline_at:
            return None
        return delay

    def _call_with_policy(self, channel: _Channel, route: Route, alert: Alert, started: float) -> ChannelOutcome:
        deadline_at = self._clock() + self.deadline
        claim = None
        if route.dedup_window is not None or route.throttle is not None:
            skip, claim = self._admit(channel.name, route, alert)
            if skip is not None:
                return skip
        tries = 0
        while True:
            tries += 1
            try:
                note = channel.transport.send(alert)
            except Exception as exc:  # noqa: BLE001 - each transport is isolated
                delay = self._next_try(channel, route, tries, exc, deadline_at, claim, started)
                if isinstance(delay, ChannelOutcome):
                    return delay
                self._sleep(delay)
                continue
            return _sent(channel, started, note, tries)

    def _next_try(
        self,
        channel: _Channel,
        route: Route,
        tries: int,
        exc: BaseException,
        deadline_at: float,
        claim: Any,
        started: float,
    ) -> float | ChannelOutcome:
        """After a failed try: the wait before the next one, or the channel's final outcome."""
        delay = self._retry_delay(route, tries, exc, deadline_at)
        if delay is None:
            self._release(claim)
            return self._failure(channel, exc, time.perf_counter() - started, attempts=tries)
        self.logger.info(
            "alert channel %s: try %d failed (%s); retrying in %.2fs", channel.name, tries, type(exc).__name__, delay
        )
        return delay

    async def _acall_with_policy(self, channel: _Channel, route: Route, alert: Alert, started: float) -> ChannelOutcome:
        import asyncio

        assert channel.asend is not None
        deadline_at = self._clock() + self.deadline
        claim = None
        if route.dedup_window is not None or route.throttle is not None:
            if self.state.blocking:  # never wait on a network store in the event loop's thread
                admitted: tuple[ChannelOutcome | None, Any] = await asyncio.wrap_future(
                    self._workers().submit(self._admit, channel.name, route, alert)
                )
                skip, claim = admitted
            else:
                skip, claim = self._admit(channel.name, route, alert)
            if skip is not None:
                return skip
        tries = 0
        while True:
            tries += 1
            try:
                note = await asyncio.wait_for(channel.asend(alert), channel.timeout or self.timeout)
            except Exception as exc:  # noqa: BLE001 - each transport is isolated
                if isinstance(exc, asyncio.TimeoutError):
                    exc = AlertTransportTimeoutError(f"no answer within {channel.timeout or self.timeout:g}s")
                delay = self._next_try(channel, route, tries, exc, deadline_at, claim, started)
                if isinstance(delay, ChannelOutcome):
                    return delay
                if self._sleep is time.sleep:
                    await asyncio.sleep(delay)
                else:  # an injected sleeper (tests)
                    self._sleep(delay)
                continue
            return _sent(channel, started, note, tries)

    def _wait_bound(self, channel: _Channel) -> float:
        policy = channel.policy
        if policy is not None and policy.retry is not None:
            return self.deadline
        return channel.timeout or self.timeout

    # -- statistics ---------------------------------------------------------------------------
    def _count(self, outcomes: Iterable[ChannelOutcome]) -> None:
        with self._stats_lock:
            for outcome in outcomes:
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
        reason = (
            f"no answer within {channel.timeout:g}s"
            if ran
            else f"not started within {channel.timeout:g}s: every worker was busy"
        )
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
        """
        if not self.enabled:
            return DeliveryResult()
        if channels is None:
            channels = transport_names
        alert, plan, outcomes = self._select(alert, channels)
        selected = [channel for _, channel, skip in plan if skip is None and channel is not None]
        delivered: list[ChannelOutcome] = []
        started = time.perf_counter()
        if len(selected) == 1 and not selected[0].blocking:
            delivered.append(self._call(selected[0], alert, started))
        elif selected:
            pool = None
            futures: list[tuple[_Channel, Future[ChannelOutcome] | None]] = []
            for channel in selected:
                if channel.blocking:
                    if pool is None:
                        pool = self._workers()
                    futures.append((channel, pool.submit(self._call, channel, alert, started)))
                else:
                    futures.append((channel, None))
            inline = {id(c): self._call(c, alert, started) for c, f in futures if f is None}
            from concurrent.futures import TimeoutError as FutureTimeout

            for channel, future in futures:
                if future is None:
                    delivered.append(inline[id(channel)])
                    continue
                remaining = self._wait_bound(channel) - (time.perf_counter() - started)
                try:
                    delivered.append(future.result(timeout=max(remaining, 0.0)))
                except FutureTimeout:
                    ran = not future.cancel()
                    delivered.append(self._timeout(channel, started, ran))
                except Exception as exc:  # noqa: BLE001 - never let one channel break the dispatch
                    delivered.append(self._failure(channel, exc, time.perf_counter() - started))
        # Unknown names first, then the configured channel order, however they finished.
        outcomes.extend(self._assemble(plan, delivered) if len(plan) != len(delivered) else delivered)
        self._count(outcomes)
        result = DeliveryResult.from_outcomes(outcomes)
        if self.audit is not None:
            self._record(alert, result)
        host = self._hooks()
        if host is not None:
            self._run_hooks_sync(host, alert, result)
        self._raise_if_needed(result)
        return result

    def _record(self, alert: Alert, result: DeliveryResult) -> None:
        try:
            self.audit.alert_infra_after_dispatch(alert.redacted(), result)
        except Exception as exc:  # noqa: BLE001 - the audit trail never breaks delivery
            self.logger.warning("alert audit trail failed to record: %s", type(exc).__name__)

    def _run_hooks_sync(self, host: Any, alert: Alert, result: DeliveryResult) -> None:
        pending = host.after_dispatch(alert.redacted(), result)
        if not pending:
            return
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for plugin_name, awaitable in pending:
            if loop is not None:
                task = asyncio.ensure_future(awaitable)
                self._pending_hooks.add(task)
                task.add_done_callback(lambda t, n=plugin_name: self._hook_done(t, n))
            else:
                try:
                    asyncio.run(_await(awaitable))
                except Exception as exc:  # noqa: BLE001
                    self.logger.warning(
                        "alert_infra_after_dispatch of plugin %s failed: %s", plugin_name, type(exc).__name__
                    )

    def _hook_done(self, task: Any, plugin_name: str) -> None:
        self._pending_hooks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.warning(
                "alert_infra_after_dispatch of plugin %s failed: %s", plugin_name, type(task.exception()).__name__
            )

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
        in the worker pool. Awaitables returned by ``after_dispatch`` hooks are awaited.
        """
        import asyncio

        if not self.enabled:
            return DeliveryResult()
        if channels is None:
            channels = transport_names
        alert, plan, outcomes = self._select(alert, channels)
        selected = [channel for _, channel, skip in plan if skip is None and channel is not None]
        started = time.perf_counter()

        async def one(channel: _Channel) -> ChannelOutcome:
            timeout = self._wait_bound(channel)
            try:
                if channel.asend is not None and channel.policy is not None:
                    return await asyncio.wait_for(
                        self._acall_with_policy(channel, channel.policy, alert, started), self.deadline
                    )
                if channel.asend is not None:
                    note = await asyncio.wait_for(channel.asend(alert), timeout)
                elif not channel.blocking and channel.policy is None:
                    note = channel.transport.send(alert)
                elif not channel.blocking and _quick(channel.policy) and not self.state.blocking:
                    return self._call(channel, alert, started)
                else:
                    future = self._workers().submit(self._call, channel, alert, started)
                    wrapped = asyncio.wrap_future(future)
                    try:
                        return await asyncio.wait_for(wrapped, timeout)
                    except asyncio.TimeoutError:
                        return self._timeout(channel, started, not future.cancel())
            except asyncio.TimeoutError:
                return self._timeout(channel, started, True)
            except Exception as exc:  # noqa: BLE001 - each transport is isolated
                return self._failure(channel, exc, time.perf_counter() - started)
            return _sent(channel, started, note)

        delivered = list(await asyncio.gather(*(one(c) for c in selected))) if selected else []
        outcomes.extend(self._assemble(plan, delivered))
        self._count(outcomes)
        result = DeliveryResult.from_outcomes(outcomes)
        if self.audit is not None:  # a database write: off the event loop's thread
            await asyncio.wrap_future(self._workers().submit(self._record, alert, result))
        host = self._hooks()
        if host is not None:
            for plugin_name, awaitable in host.after_dispatch(alert.redacted(), result):
                try:
                    await awaitable
                except Exception as exc:  # noqa: BLE001 - hooks never break delivery
                    self.logger.warning(
                        "alert_infra_after_dispatch of plugin %s failed: %s", plugin_name, type(exc).__name__
                    )
        self._raise_if_needed(result)
        return result

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
        """Close every transport that has ``close()`` and stop idle worker threads."""
        for transport in self.transports:
            close = getattr(transport, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # noqa: BLE001
                    self.logger.warning(
                        "alert channel %s failed to close: %s", getattr(transport, "name", "?"), type(exc).__name__
                    )
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        if self._state is not None:
            self._state.close()
        close_audit = getattr(self.audit, "close", None)
        if callable(close_audit):
            close_audit()

    def __enter__(self) -> AlertDispatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self._all_channels())
        return f"AlertDispatcher(channels=[{names}], enabled={self.enabled})"


def _quick(policy: Route | None) -> bool:
    """Whether a policy never waits (no retry sleeps), so it may run on the event loop's thread."""
    return policy is None or policy.retry is None


def _sent(channel: _Channel, started: float, note: object, attempts: int = 1) -> ChannelOutcome:
    # ``send`` returns None by contract; a transport may return a short string saying how it
    # delivered (which email provider, say): it becomes the outcome's ``detail``, redacted.
    detail = redact_text(note)[:300] if isinstance(note, str) and note else None
    return ChannelOutcome(channel.name, "sent", attempts=attempts, elapsed=time.perf_counter() - started, detail=detail)


async def _await(awaitable: Any) -> Any:
    return await awaitable
