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

Its collaborators: :mod:`alert_infra.routing` (step 1), :mod:`alert_infra.admission` (the gate
chain: routing's verdicts, silences, inhibition, resolves routed by the notification log,
de-duplication and throttling), ``_channels`` (a channel's call and outcomes) and ``_observe``
(step 4). Why this module is still ~1,000 lines and :class:`AlertDispatcher` ~860: the class is
the documented API (its docstrings and argument list are ~200 lines; 0.1.x names included) and
holds the sync and async drivers of one step generator, the lone-channel fast paths and the
digest release of grouping, which all share its pool, clock, slots and flow bookkeeping; split
apart, each part would reach back into the others (the layer test forbids that loop).
"""

from __future__ import annotations

import time
import weakref
from _thread import allocate_lock  # threading itself is imported when a worker starts

from ._channels import (
    MAX_OVERDUE_PER_CHANNEL,
    MAX_RUNNING_PER_CHANNEL,
    OUTCOME_REASON_LIMIT,
    Channel,
    Flow,
    is_retryable_exception,
    read_attribute,
)
from ._checks import MAX_WORKERS, check_count, check_seconds
from ._in_caller import IN_CALLER, NeedsThread
from ._lifecycle import on_fork_in_child
from ._observe import GROUPED_STAT_KEYS, MAX_OVERDUE_HOOKS, MAX_QUEUED_HOOKS, STAT_KEYS, Observer, default_logger
from .admission import LOG_REFRESH, MAX_LOG_ENTRIES_IN_MEMORY, STATE_WAIT, Admission
from .alert import Alert
from .exceptions import (
    AlertDeliveryError,
    AlertTransportTimeoutError,
    AlertValidationError,
    RetryableAlertTransportError,
)
from .result import ChannelOutcome, DeliveryResult, PlainDetail, Sent
from .routing import Route, plan, unknown_channel_message
from .security import redact_text

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Generator, Iterable, Mapping, Sequence
    from typing import Any

    from .pool import Task, WorkerPool
    from .state import StateBackend

    Step = Generator["tuple[int, Any]", Any, ChannelOutcome]

# Route, unknown_channel_message and the constants after it are re-exported from the collaborator
# that now uses them (routing, admission, observation): this was their documented home.
__all__ = [
    "LOG_REFRESH",
    "MAX_LOG_ENTRIES_IN_MEMORY",
    "MAX_OVERDUE_HOOKS",
    "MAX_OVERDUE_PER_CHANNEL",
    "MAX_QUEUED_HOOKS",
    "MAX_RUNNING_PER_CHANNEL",
    "OUTCOME_REASON_LIMIT",
    "STATE_WAIT",
    "STAT_KEYS",
    "AlertDispatcher",
    "Route",
    "is_retryable_exception",
    "unknown_channel_message",
]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_WORKERS = 32
#: The longest the caller waits for the audit trail and the ``after_dispatch`` hooks of one
#: dispatch, in seconds (``AlertDispatcher(hook_timeout=...)``); they finish in the background.
DEFAULT_HOOK_TIMEOUT = 1.0
# What a step asks its driver for.
_ADMIT, _TRY, _SLEEP = 0, 1, 2


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
        grouping: ``{channel name: GroupPolicy or its settings}`` (``{"ops": {"group_by": ["source"],
            "group_wait": "30s"}}``): those channels send digests of alert groups instead of each alert
            (Alertmanager's timing; an alert held for its group has the outcome status ``"held"``;
            see ``docs/guide/lifecycle.md``). Default: none (no group store is read).
        resolve_timeout: how long an alert counts as firing without being sent again (default
            ``"5m"``): inhibition sources, and the alerts a group repeats. A ``GroupPolicy`` given in
            ``grouping`` keeps its own.
        resolve_window: how long the notification log remembers a delivery, so its resolve is
            routed (default ``"7d"``; at least twice the longest ``repeat_interval``).
        group_flusher: ``"process"`` (default: this process flushes its groups on time, from a
            background thread, and what is pending at exit or :meth:`close`) or ``"worker"``
            (``alert-infra worker`` or a Celery worker flushes them: this process only holds alerts).
        wall_clock: seconds since the epoch for the lifecycle rules (silences, inhibition, group
            timers); default :func:`time.time`. Tests inject one (a dispatcher with an injected
            clock is flushed by ``dispatcher.groups.flush()``, never by the background thread).
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

    #: Whether this dispatcher keeps a notification log of its deliveries and routes a resolve or
    #: acknowledge by it (to exactly the channels that delivered the firing alert). ``False`` for
    #: the queued senders (:class:`~alert_infra.queued.sender.QueuedDispatcher`): their one
    #: channel hands every alert to a worker, which keeps the log of the real channels and routes
    #: resolves there, so a resolve sent by another process than the firing alert still arrives.
    keeps_notification_log = True

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
        grouping: Mapping[str, Any] | None = None,
        resolve_timeout: float | str | None = None,
        resolve_window: float | str | None = None,
        group_flusher: str = "process",
        wall_clock: Any = None,
    ) -> None:
        self.timeout = check_seconds(timeout, "timeout")
        self.max_workers = check_count(max_workers, "max_workers", maximum=MAX_WORKERS)
        self.hook_timeout = check_seconds(hook_timeout, "hook_timeout", zero=True)
        self.deadline = check_seconds(deadline, "deadline") if deadline is not None else self.timeout
        if transports is not None and (isinstance(transports, (str, bytes)) or not hasattr(transports, "__iter__")):
            raise AlertValidationError(f"transports: must be a list of transports, got a {type(transports).__name__}")
        self.transports = list(transports or [])
        for transport in self.transports:
            send, error = read_attribute(transport, "send", None)
            asend, error2 = read_attribute(transport, "asend", None)
            if not callable(send) and not callable(asend) and error is None and error2 is None:
                raise AlertValidationError(f"transport {type(transport).__name__} has no send(alert) method")
        self.enabled = enabled
        self.raise_on_failure = raise_on_failure
        self._logger = logger_
        self._pool: WorkerPool | None = None
        self._lock = allocate_lock()
        self._channel_key: tuple[int, ...] = ()
        self._channels: list[Channel] = []
        self._every: list[tuple[str, Channel | None, ChannelOutcome | None]] = []
        self._env_plugins: bool | None = None
        if default_channels is not None and isinstance(default_channels, str):
            default_channels = [default_channels]
        self.default_channels = list(default_channels) if default_channels is not None else None
        self.routes: dict[str, Route] = dict(routes or {})
        for name, route in self.routes.items():
            if not isinstance(route, Route):
                raise AlertValidationError(f"routes[{name!r}]: must be a Route, got a {type(route).__name__}")
        self._clock = clock or time.monotonic
        self._sleep = sleep or time.sleep
        self._random = random
        self.audit = audit
        self._stats_lock = allocate_lock()  # the channels' overdue counts
        self._observer = Observer(logger_)
        self._metrics: Any = None  # alert_infra.metrics.instrument(): record(alert, outcomes) per dispatch
        #: Called as ``on_sent(channel_name)`` in the thread that delivered, the moment a channel
        #: succeeds (before the dispatch ends): queued delivery writes its idempotency record
        #: here, so a worker killed while another channel is still sending does not lose it.
        #: Its exceptions are logged, never raised into delivery.
        self.on_sent: Any = None
        #: Where what this dispatcher's senders could not deliver before the interpreter exits is
        #: written (a :class:`~alert_infra.queued.settings.SpoolSettings`; ``None``: nowhere).
        #: Set by ``AlertConfig.build_dispatcher`` when ``[alert_infra] spool`` is set; read by
        #: :class:`~alert_infra.logging.AlertHandler` at exit. The dispatcher itself never reads it.
        self.exit_spool: Any = None
        own_state = isinstance(state, str)
        if isinstance(state, str):
            from .state import open_state  # a URL: its backend module only

            state = open_state(state)
        # Admission: routing's verdicts, the lifecycle gates (silences, inhibition, the notification
        # log that routes resolves) and the delivery policies on the state backend.
        self._admission = Admission(
            state=state,
            clock=self._clock,
            logger=logger_,
            silences=silences,
            inhibit_rules=inhibit_rules,
            lifecycle_state=lifecycle_state,
            lifecycle_prefix=lifecycle_prefix,
            grouping=grouping,
            resolve_timeout=resolve_timeout,
            resolve_window=resolve_window,
            group_flusher=group_flusher,
            wall_clock=wall_clock,
            notification_log=self.keeps_notification_log,
        )
        groups = self._admission.groups
        if groups is not None:
            self._observer.keys = GROUPED_STAT_KEYS  # every channel gets a "held" counter
            groups.attach(self)

        # Dropped without close(): its worker threads (which hold the pool, never the dispatcher)
        # stop, and a state it opened itself is closed.
        self._resources = _Resources(state if own_state else None)
        self._finalizer: Any = weakref.finalize(self, self._resources.release)
        on_fork_in_child(self, AlertDispatcher._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: fresh locks (another thread may have held them), no overdue sends
        (the threads running them stayed in the parent). The pool and the state reset themselves."""
        self._lock = allocate_lock()
        self._stats_lock = allocate_lock()
        self._admission.after_fork()
        self._observer.after_fork()
        for channel in self._channels:
            channel.overdue = 0
            channel.slots = None  # the parent's threads held some: the child starts with all free

    # -- helpers ---------------------------------------------------------------------------
    @property
    def logger(self) -> logging.Logger:
        if self._logger is None:
            self._logger = default_logger()
        return self._logger

    @logger.setter
    def logger(self, value: logging.Logger) -> None:
        self._logger = self._admission.logger = self._observer.logger = value

    def _all_channels(self) -> list[Channel]:
        # ``transports`` is a public list (0.1.x); rebuild channels if it changed. Built aside
        # and swapped in under the lock, so two first dispatches at once see one list each.
        key = tuple(map(id, self.transports))
        if key == self._channel_key:
            return self._channels
        with self._lock:
            if key != self._channel_key:
                channels = []
                for transport in self.transports:
                    channel = Channel(transport, self.timeout)
                    route = self.routes.get(channel.name)
                    if route is not None and route.timeout is not None:
                        channel.timeout = route.timeout
                    if route is not None and route.has_policy:
                        channel.policy = route
                    channel.settle()
                    channels.append(channel)
                self._channels = channels
                # The plan of a send that names no channel when nothing routes (read, never changed).
                self._every = [(c.name, c, None) for c in channels]
                self._channel_key = key
            return self._channels

    def _workers(self) -> WorkerPool:
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    # the first send on a worker thread: threading stays out of the everyday import
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

    # -- what admission and observation keep, as the 0.1.x / 0.2 API reads it ----------------------
    @property
    def state(self) -> StateBackend:
        """The backend of throttle budgets and de-duplication windows (memory unless configured)."""
        return self._admission.state

    def admit(self, name: str, route: Route, alert: Alert) -> ChannelOutcome | None:
        """Apply ``route``'s de-duplication and throttling to ``alert`` under the name ``name``,
        with this dispatcher's state: the skip outcome, or ``None`` when the alert may go.

        For senders other than the dispatcher's own channels (such as
        :class:`~alert_infra.logging.AlertHandler`); the de-duplication claim is kept.
        """
        return self._admission.admit(name, route, alert)[0]

    @property
    def silences(self) -> Any:
        """The :class:`~alert_infra.lifecycle.SilenceStore` of the silence gate (``None``: no gate)."""
        return self._admission.silences

    @property
    def groups(self) -> Any:
        """The grouping of this dispatcher (:class:`alert_infra._groups.Groups`: ``next_due()``,
        ``pending()``, ``flush(now)``), or ``None`` when no channel groups alerts."""
        return self._admission.groups

    @property
    def notification_log(self) -> Any:
        """The :class:`~alert_infra.lifecycle.NotificationLog`: per fingerprint and channel, what was
        delivered and the provider's handle (opened on first use, in ``lifecycle_state``)."""
        return self._admission.notification_log

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-channel counters since this dispatcher was made (or :meth:`reset_stats`).

        ``{channel: {"sent", "failed", "retried", "throttled", "deduplicated",
        "skipped"}}`` (and ``"held"`` when the dispatcher groups: alerts kept for a digest; a
        digest sent counts as ``"sent"``); ``retried`` counts extra tries, the others count alerts.
        Only configured channels are counted (a name that matches none is not).
        Counted in this process (a shared ``state`` shares budgets, not statistics).
        """
        return self._observer.stats()

    def reset_stats(self) -> None:
        """Set every counter of :meth:`stats` back to zero."""
        self._observer.reset_stats()

    @property
    def hooks_dropped(self) -> int:
        """Dispatches whose audit record and hooks were dropped: every hook thread hung and
        :data:`MAX_QUEUED_HOOKS` dispatches already waited (logged at ERROR)."""
        return self._observer.hooks_dropped

    def _select(
        self, alert: Any, channels: Iterable[str] | str | None
    ) -> tuple[Alert, list[tuple[str, Channel | None, ChannelOutcome | None]], list[ChannelOutcome]]:
        """``(alert, plan, unknown)``: ``plan`` lists ``(name, channel, skip)`` in configured order
        (see :func:`alert_infra.routing.plan`)."""
        if not isinstance(alert, Alert):
            raise AlertValidationError(f"send() needs an Alert, got a {type(alert).__name__}")
        if alert.redact_sensitive_data:
            alert = alert.redacted()  # itself, unless a secret was registered after it was made
        available = self._all_channels()
        if channels is None and self.default_channels is None and not self.routes:
            return alert, self._every, []  # every channel, no route: nothing to decide
        planned, missing = plan(alert, channels, available, self.routes, self.default_channels, self.logger)
        return alert, planned, missing

    def _gate(
        self, alert: Alert, planned: list[tuple[str, Channel | None, ChannelOutcome | None]], channels: Any
    ) -> tuple[list[tuple[str, Channel | None, ChannelOutcome | None]], dict[str, Any] | None]:
        """The admission gates after routing (``(plan, routed)``: see :meth:`Admission.gate`)."""
        admission = self._admission
        if not admission.gated and alert.status == "firing":
            return planned, None  # no lifecycle gate: nothing to read
        return admission.gate(alert, planned, self._all_channels(), channels is None)

    @staticmethod
    def _assemble(
        planned: list[tuple[str, Channel | None, ChannelOutcome | None]], delivered: Iterable[ChannelOutcome]
    ) -> list[ChannelOutcome]:
        results = iter(delivered)
        return [next(results) if skip is None else skip for _, _, skip in planned]

    # -- the one description of a channel's delivery -----------------------------------------
    def _steps(self, flow: Flow, alert: Alert) -> Step:
        """Admission, tries and backoff for one channel: yields what it needs, returns the outcome."""
        channel = flow.channel
        route = channel.policy
        if route is not None and route.admits and not flow.routed:
            skip, claim = yield _ADMIT, route
            if skip is not None:
                return skip  # type: ignore[no-any-return]
            with flow.lock:
                if flow.abandoned:  # the caller gave up while we were admitted: hand it back
                    self._admission.release(claim)
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
                return channel.failure(self.logger, exc, time.perf_counter() - flow.started, attempts=tries)
            self.logger.info(
                "alert channel %s: try %d failed (%s); retrying in %.2fs",
                channel.name,
                tries,
                type(exc).__name__,
                delay,
            )
            yield _SLEEP, delay

    def _sent(self, flow: Flow, note: object, tries: int) -> ChannelOutcome:
        # ``send`` returns None by contract; a transport may return a short string saying how it
        # delivered (which email provider, say): it becomes the outcome's ``detail``, redacted. Or a
        # ``Sent`` with that detail and the provider's handle for the message (kept on the outcome).
        handle: dict[str, Any] | None = None
        if isinstance(note, Sent):
            handle = note.handle
            note = note.detail
        detail: str | None = None
        if isinstance(note, str) and note:
            detail = note[:300] if type(note) is PlainDetail else redact_text(note)[:300]
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
            self._admission.reclaim(flow.channel.name, flow.channel.policy, flow.alert)
        # Every status: an acknowledge leaves the entry firing, and keeps the handle of a message
        # it had to post anew (the old one gone), so the resolve edits that one.
        self._admission.log_delivery(flow.alert, flow.channel.name, handle)
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

    def _give_up(self, flow: Flow) -> None:
        with flow.lock:
            claim, flow.claim = flow.claim, None
        self._admission.release(claim)

    def _abandon(self, flow: Flow) -> None:
        """The caller stopped waiting: the send's fate is unknown, so it holds no claim."""
        with flow.lock:
            flow.abandoned = True
            claim, flow.claim = flow.claim, None
        self._admission.release(claim)

    def _attempt(
        self, channel: Channel, alert: Alert, handle: Any = None, until: float | None = None
    ) -> tuple[object, BaseException | None]:
        """One synchronous try: ``(note, None)`` or ``(None, error)``; never raises. With the
        provider's ``handle`` of a delivered alert (a routed resolve), ``update`` when the
        transport has it. In a worker thread (``until``: when the caller stops waiting), the try
        first takes one of the channel's :data:`MAX_RUNNING_PER_CHANNEL` slots."""
        if until is None:
            return self._call(channel, alert, handle)
        slots = channel.slots
        if slots is None:
            slots = self._slots(channel)
        if not slots.acquire(timeout=max(until - time.perf_counter(), 0.0)):
            return None, AlertTransportTimeoutError(
                f"not started: {MAX_RUNNING_PER_CHANNEL} sends to this channel were still running"
            )
        try:
            return self._call(channel, alert, handle)
        finally:
            slots.release()

    def _slots(self, channel: Channel) -> Any:
        import threading  # loaded already: a worker thread runs this

        with self._stats_lock:
            if channel.slots is None:
                channel.slots = threading.BoundedSemaphore(MAX_RUNNING_PER_CHANNEL)
            return channel.slots

    def _call(self, channel: Channel, alert: Alert, handle: Any) -> tuple[object, BaseException | None]:
        try:
            if handle is not None and channel.update is not None:
                return channel.update(alert, handle), None
            if channel.send is not None:
                return channel.send(alert), None
            assert channel.asend is not None
            from .pool import loop_thread  # a channel with asend only: the pool's event-loop thread

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

    def _run_in_caller(
        self, channel: Channel, alert: Alert, started: float, routed: dict[str, Any] | None
    ) -> ChannelOutcome | None:
        """One try of a lone channel with no policy in the caller's thread, on the transport's
        word that a send on an open connection ends within ``connected_send_time`` (no thread
        hand-off: on a kept-alive HTTPS connection that is most of a dispatch's cost). ``None``
        when the transport needs a worker thread (:class:`~alert_infra._in_caller.NeedsThread`:
        a new connection; nothing was sent)."""
        flow = Flow(channel, alert, started, routed.get(channel.name) if routed else None)
        token = IN_CALLER.set(True)
        try:
            note, exc = self._call(channel, alert, flow.handle if channel.update is not None else None)
        finally:
            IN_CALLER.reset(token)
        if exc is None:
            return self._sent(flow, note, 1)
        if isinstance(exc, NeedsThread):
            return None
        return channel.failure(self.logger, exc, time.perf_counter() - started)

    def _run(self, flow: Flow, alert: Alert) -> ChannelOutcome:
        """The synchronous driver of :meth:`_steps` (in a worker thread, or inline)."""
        channel = flow.channel
        if channel.policy is None:
            # No admission, no retries: what _steps would do, without a generator (the hot path
            # of a channel with no policy, ~1 µs less per alert).
            note, exc = self._attempt(channel, alert, flow.handle, flow.until)
            if exc is None:
                return self._sent(flow, note, 1)
            self._give_up(flow)
            return channel.failure(self.logger, exc, time.perf_counter() - flow.started)
        steps = self._steps(flow, alert)
        reply: Any = None
        try:
            while True:
                kind, argument = steps.send(reply)
                if kind == _TRY:
                    reply = self._attempt(channel, alert, flow.handle, flow.until)
                elif kind == _ADMIT:
                    reply = self._admission.admit(channel.name, argument, alert)
                else:
                    self._sleep(argument)
                    reply = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _arun(self, flow: Flow, alert: Alert) -> ChannelOutcome:
        """The asyncio driver of :meth:`_steps`: awaits what :meth:`_run` blocks on."""
        import asyncio  # the asyncio path only: asend() runs on an event loop

        steps = self._steps(flow, alert)
        reply: Any = None
        channel = flow.channel
        try:
            while True:
                kind, argument = steps.send(reply)
                if kind == _TRY:
                    reply = await self._aattempt(channel, alert, flow.handle)
                elif kind == _ADMIT:
                    reply = await self._admission.aadmit(channel.name, argument, alert, self._workers())
                elif self._sleep is time.sleep:
                    await asyncio.sleep(argument)
                    reply = None
                else:  # an injected sleeper (tests)
                    self._sleep(argument)
                    reply = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _aattempt(
        self, channel: Channel, alert: Alert, handle: Any = None
    ) -> tuple[object, BaseException | None]:
        """One try on the event loop: native ``asend``, inline for in-memory transports, else a
        worker thread (written off if it overstays). ``update(alert, handle)`` (synchronous) runs
        like a blocking ``send``."""
        import asyncio  # the asyncio path only

        from .pool import wait_task  # the asyncio path only: the pool's awaitable wait

        timeout = channel.timeout
        if channel.update is None:
            handle = None
        try:
            if channel.asend is not None and handle is None:
                return await asyncio.wait_for(channel.asend(alert), timeout), None
            if not channel.blocking:
                return self._attempt(channel, alert, handle)
            pool = self._workers()
            task = pool.submit(self._attempt, channel, alert, handle, time.perf_counter() + timeout)
            try:
                done = await wait_task(task, timeout)
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

    def _retry_delay(self, route: Route, tries: int, exc: BaseException, deadline_at: float) -> float | None:
        retry = route.retry
        if retry is None or tries >= retry.attempts or not is_retryable_exception(exc):
            return None
        retry_after = getattr(exc, "retry_after", None) if isinstance(exc, RetryableAlertTransportError) else None
        if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool):
            retry_after = None
        if self._random is None:
            import random  # the first retry only: random stays out of the everyday import

            self._random = random.random
        delay = retry.delay(tries, retry_after, self._random)
        if delay is None or self._clock() + delay >= deadline_at:
            return None
        return float(delay)

    def _wait_bound(self, channel: Channel) -> float:
        policy = channel.policy
        if policy is not None and policy.retry is not None:
            return max(self.deadline, channel.timeout)
        return channel.timeout

    def _write_off(self, pool: WorkerPool, channel: Channel, task: Task, flow: Flow | None) -> str:
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

    def _raise_if_needed(self, result: DeliveryResult) -> None:
        if result.failed and self.raise_on_failure:
            raise AlertDeliveryError(f"alert delivery failed for: {', '.join(result.failed)}", result=result)

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
        alert, planned, outcomes = self._select(alert, channels)
        routed = None
        if self._admission.gates or (alert.status != "firing" and self.keeps_notification_log):
            # else no gate after routing: no call
            planned, routed = self._gate(alert, planned, channels)
        selected = [channel for _, channel, skip in planned if skip is None and channel is not None]
        started = time.perf_counter()
        if len(selected) == 1 and selected[0].inline:
            channel = selected[0]
            flow = Flow(channel, alert, started, routed.get(channel.name) if routed else None)
            healthy = channel.broken is None and channel.overdue < MAX_OVERDUE_PER_CHANNEL  # refusal()'s test
            delivered = [(None if healthy else channel.refusal(self.logger, started)) or self._run(flow, alert)]
        elif len(selected) == 1 and selected[0].in_caller and selected[0].broken is None and not selected[0].overdue:
            outcome = self._run_in_caller(selected[0], alert, started, routed)
            delivered = [outcome] if outcome is not None else self._deliver(selected, alert, started, routed)
        elif selected:
            delivered = self._deliver(selected, alert, started, routed)
        else:
            delivered = []
        # Unknown names first, then the configured channel order, however they finished.
        outcomes.extend(self._assemble(planned, delivered) if len(planned) != len(delivered) else delivered)
        if self._metrics is not None:
            self._metrics.record(alert, outcomes)
        self._observer.count(outcomes)
        result = DeliveryResult.from_outcomes(outcomes)
        self._observer.observe(self.audit, alert, result, self.hook_timeout)
        self._raise_if_needed(result)
        return result

    def _deliver(
        self, selected: list[Channel], alert: Alert, started: float, routed: dict[str, Any] | None = None
    ) -> list[ChannelOutcome]:
        pool = None
        running: list[tuple[Channel, Flow | None, Task | ChannelOutcome | None]] = []
        # In the caller's thread: the in-memory channels, and at most one self-bounded one (the
        # last): the others are in flight meanwhile, so the caller's thread is not idle.
        self_bounded = [c for c in selected if c.inline and c.blocking]
        in_caller = self_bounded[-1] if self_bounded else None
        for channel in selected:
            refusal = channel.refusal(self.logger, started)
            if refusal is not None:
                running.append((channel, None, refusal))
            elif not channel.inline or (channel.blocking and channel is not in_caller):
                if pool is None:
                    pool = self._workers()
                new = Flow(channel, alert, started, routed.get(channel.name) if routed else None)
                new.until = started + self._wait_bound(channel)
                running.append((channel, new, pool.submit(self._run, new, alert)))
            else:
                running.append(
                    (channel, Flow(channel, alert, started, routed.get(channel.name) if routed else None), None)
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
                        delivered.append(
                            channel.timed_out(self.logger, started, state == "written_off", self._wait_bound(channel))
                        )
                        continue
                if task.cancelled:
                    delivered.append(channel.timed_out(self.logger, started, False, self._wait_bound(channel)))
                elif task.error is not None:  # _run never raises; a BaseException that got through
                    delivered.append(channel.failure(self.logger, task.error, time.perf_counter() - started))
                else:
                    delivered.append(task.value)
        return delivered

    def _deliver_released(self, alert: Alert, name: str, entry: Any) -> DeliveryResult:
        """Deliver ``alert`` to the channel ``name`` past the admission gates: a digest the grouping
        gate released (:mod:`alert_infra._groups`). ``entry`` stands where a routed resolve's log
        entry does (its ``handle``, if any, is updated): no de-duplication or throttle. Tries,
        retries, the notification log, statistics, the audit trail and the hooks as for ``send``;
        never raises for a delivery problem."""
        channel = next((c for c in self._all_channels() if c.name == name), None)
        if channel is None or not self.enabled:
            return DeliveryResult()
        if alert.redact_sensitive_data:
            alert = alert.redacted()  # itself, unless a secret was registered after it was made
        outcomes = self._deliver([channel], alert, time.perf_counter(), {name: entry})
        if self._metrics is not None:
            self._metrics.record(alert, outcomes)
        self._observer.count(outcomes)
        result = DeliveryResult.from_outcomes(outcomes)
        self._observer.observe(self.audit, alert, result, self.hook_timeout)
        return result

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
        import asyncio  # the asyncio path only: asend() runs on an event loop

        if not self.enabled:
            return DeliveryResult()
        if channels is None:
            channels = transport_names
        alert, planned, outcomes = self._select(alert, channels)
        # The gates read the lifecycle stores (the silence index at most once a second; the log for a
        # resolve only): each read is bounded by its store's timeout (0.5 s by default).
        planned, routed = self._gate(alert, planned, channels)
        selected = [channel for _, channel, skip in planned if skip is None and channel is not None]
        started = time.perf_counter()

        async def one(channel: Channel) -> ChannelOutcome:
            refusal = channel.refusal(self.logger, started)
            if refusal is not None:
                return refusal
            flow = Flow(channel, alert, started, routed.get(channel.name) if routed else None)
            try:
                return await asyncio.wait_for(self._arun(flow, alert), self._wait_bound(channel))
            except asyncio.TimeoutError:
                self._abandon(flow)
                return channel.timed_out(self.logger, started, True, self._wait_bound(channel))

        delivered = list(await asyncio.gather(*(one(c) for c in selected))) if selected else []
        outcomes.extend(self._assemble(planned, delivered))
        if self._metrics is not None:
            self._metrics.record(alert, outcomes)
        self._observer.count(outcomes)
        result = DeliveryResult.from_outcomes(outcomes)
        await self._observer.aobserve(self.audit, alert, result, self.hook_timeout)
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
        from .config import load_config  # upward (tests/test_layers.py UPWARD): AlertDispatcher.from_config() only

        return load_config(source).build_dispatcher(**kwargs)

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every transport that has ``close()``, stop idle worker threads, close the state
        and the audit trail. With grouping and ``group_flusher = "process"``, the groups holding
        alerts no digest told yet are flushed first (within ``_groups.EXIT_FLUSH_TIMEOUT``)."""
        groups = self._admission.groups
        if groups is not None:
            from ._groups import EXIT_FLUSH_TIMEOUT, FLUSHER, flush_pending  # loaded already: it made the groups

            if groups.flusher == "process":
                flush_pending([groups], time.monotonic() + EXIT_FLUSH_TIMEOUT)
            flusher = FLUSHER.peek()
            if flusher is not None:
                flusher.forget(groups)
        for transport in self.transports:
            close, _ = read_attribute(transport, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # noqa: BLE001
                    self.logger.warning(
                        "alert channel %s failed to close: %s",
                        read_attribute(transport, "name", "?")[0],
                        type(exc).__name__,
                    )
        pool, self._pool = self._pool, None
        self._resources.pool = self._resources.state = None
        if pool is not None:
            pool.shutdown()
        state = self._admission.configured_state
        if state is not None:
            state.close()
        self._admission.close()
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


def _in_main_thread() -> bool:
    import threading  # a KeyboardInterrupt only: threading stays out of the everyday import (test_public_api)

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
