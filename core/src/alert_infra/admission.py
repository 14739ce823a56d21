"""Admission: the chain of gates an alert passes on each channel before a try.

Every rule that may keep an alert from a channel is a *gate*: an object with a ``name`` and
``check(alert, channel, now, *, delivered=False) -> Verdict`` (the interface of
:mod:`alert_infra.lifecycle.gates`). The dispatcher asks them in this order, per channel, and the
first verdict that is not "admit" decides (its reason is the outcome's ``suppressed_by``):

1. **unmatched** (a resolve or an acknowledge only): it goes to exactly the channels whose
   notification log shows the firing alert delivered, whatever the gates after it say now; every
   other channel skips it. (:class:`Admission.route_resolve`)
2. **routing**: the channel's :class:`~alert_infra.routing.Route` (enabled, minimum severity, tags).
3. **inhibit**, 4. **silence**: the lifecycle gates configured on the dispatcher (firing alerts).
5. **group**: a channel with grouping holds the alert for its group's digest (outcome status
   ``"held"``; :class:`~alert_infra._groups.Groups`, which also delivers the digests the group's
   flushes produce, below this gate). A resolve of an alert a group holds is held too (step 1
   asks the group first); any other resolve or acknowledge is routed by step 1 as without grouping.
6. **dedup** and **throttle**: :class:`PolicyGate`, on the dispatcher's state backend. It is the
   one gate that may wait on the network (Redis) and the one that holds something (a
   de-duplication claim, handed back when the delivery fails), so it runs as the first step of the
   channel's own delivery, in the channel's thread, not in the caller's.

A new rule is one more gate in :attr:`Admission.gates`, not a branch in the dispatcher.
:class:`Admission` also owns what the gates read and write: the state backend, the lifecycle
stores (notification log, silences, inhibition sources, groups) and the delivery log.
"""

from __future__ import annotations

import os
import time
import weakref
from _thread import allocate_lock

from ._observe import Logged, default_logger
from .exceptions import AlertValidationError
from .lifecycle.durations import parse_duration  # loads the standard library only
from .lifecycle.gates import ADMIT, Verdict
from .result import ChannelOutcome
from .routing import Route, skipped

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Sequence
    from typing import Any

    from .alert import Alert
    from .pool import Task, WorkerPool
    from .state import StateBackend

__all__ = ["STATE_WAIT", "Admission", "PolicyGate"]

#: The longest :meth:`AlertDispatcher.asend` waits for a blocking state backend (Redis) to
#: admit an alert before delivering without throttle and de-duplication (fail open).
STATE_WAIT = 2.0
#: The most notification-log entries a dispatcher keeps in memory (the oldest go first).
MAX_LOG_ENTRIES_IN_MEMORY = 100_000
#: Seconds during which a repeat of the same firing alert on a channel is not written to an in-memory
#: notification log again (it is already there, with its handle): the hot path of repeated alerts.
LOG_REFRESH = 60.0


class PolicyGate:
    """De-duplication, then throttling, on a state backend: the last gate of the chain.

    ``check_route(name, route, alert, now)`` answers for an explicit :class:`Route` (what
    :meth:`AlertDispatcher.admit` offers senders other than the dispatcher's channels); an
    admitted alert with a de-duplication window carries the window's ``claim``. Fails open: a
    state backend that raises costs the alert its throttle and de-duplication, never its delivery.
    """

    name = "policy"
    __slots__ = ("_admission",)

    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def check_route(self, name: str, route: Route, alert: Alert, now: float = 0.0) -> Verdict:
        key = None
        if route.dedup_window is not None:
            key = f"dd:{name}:{alert.status}:{alert.fingerprint}"
        throttle = route.throttle
        buckets = throttle.buckets(name, alert.fingerprint) if throttle is not None else ()
        owner = self._admission
        try:
            verdict, token, wait, index = owner.state.admit(key, route.dedup_window or 0.0, buckets)
        except Exception as exc:  # noqa: BLE001 - a broken state backend must not cost the alert: fail open
            owner.logger.warning(
                "alert state backend failed for channel %s (%s): delivering without throttle and de-duplication",
                name,
                type(exc).__name__,
            )
            return ADMIT
        if verdict == "duplicate":
            return Verdict.skip(
                "dedup",
                detail=f"duplicate: the same alert went to this channel within the last {route.dedup_window:g}s",
            )
        if verdict == "throttled" and throttle is not None:
            return Verdict.skip(
                "throttle",
                detail=f"throttled: over {throttle.describe(index)}; a slot frees in {wait:.1f}s",
                until=now + wait,
            )
        return Verdict.admit((key, token) if key is not None and token is not None else None)


class Admission(Logged):
    """The admission chain of one dispatcher, and the records its gates keep.

    Made by :class:`~alert_infra.dispatcher.AlertDispatcher` from its ``state``, ``silences``,
    ``inhibit_rules``, ``lifecycle_state`` and ``lifecycle_prefix`` arguments (see there).
    """

    def __init__(
        self,
        *,
        state: StateBackend | None,
        clock: Any,
        logger: logging.Logger | None = None,
        silences: Any = None,
        inhibit_rules: Any = None,
        lifecycle_state: Any = None,
        lifecycle_prefix: str | None = None,
        grouping: Any = None,
        resolve_timeout: Any = None,
        resolve_window: Any = None,
        group_flusher: str = "process",
        wall_clock: Any = None,
        notification_log: bool = True,
    ) -> None:
        self._logger = logger
        #: Whether this chain keeps a notification log and routes resolves by it (``False``: a
        #: queued sender, whose one channel hands every alert to a worker that keeps the log and
        #: routes there; see ``AlertDispatcher.keeps_notification_log``).
        self.keeps_log = notification_log
        self._state = state
        self._clock = clock
        #: Seconds since the epoch, for the lifecycle rules (silences, inhibition, group timers).
        self.wall_clock: Any = wall_clock or time.time
        self._lock = allocate_lock()
        self._lifecycle_state = lifecycle_state
        self._lifecycle_prefix = lifecycle_prefix
        #: ``resolve_timeout`` (seconds; default 5 minutes): an alert not sent again for this long
        #: stops firing (inhibition, group repeats).
        self.resolve_timeout = parse_duration(
            300.0 if resolve_timeout is None else resolve_timeout, "resolve_timeout", zero=False
        )
        #: ``resolve_window`` (seconds; default 7 days): how long the notification log keeps an entry
        #: (at least twice the longest ``repeat_interval`` of a grouped channel).
        self.resolve_window = parse_duration(
            7 * 86400.0 if resolve_window is None else resolve_window, "resolve_window", zero=False
        )
        self.quiet = _QuietLogger(self)  # warnings of lifecycle stores: once a minute each
        self._nlog: Any = None
        # (channel, log key) -> (handle, monotonic time) of the last firing write to an in-memory log
        self._logged: dict[tuple[str, str], tuple[Any, float]] | None = None
        self.policy = PolicyGate(self)
        self.silence_gate: Any = self._make_silence_gate(silences) if silences is not None else None
        self.inhibit_gate: Any = None
        if inhibit_rules is not None:
            # inhibit rules only: lifecycle loads each of its modules on first use
            from .lifecycle import InhibitGate, InhibitRule, inhibit_rules_from_config

            rules = list(inhibit_rules)
            tables = [rule for rule in rules if not isinstance(rule, InhibitRule)]
            parsed = iter(inhibit_rules_from_config(tables))
            rules = [rule if isinstance(rule, InhibitRule) else next(parsed) for rule in rules]
            self.inhibit_gate = InhibitGate(
                rules,
                self._lifecycle_store("inhibit_sources"),
                resolve_timeout=self.resolve_timeout,
                logger_=self.quiet,
            )
        #: The grouping gate and the delivery of its digests (``None``: no channel groups, and a
        #: firing alert reads no group store).
        self.groups: Any = None
        if grouping:
            from ._groups import Groups  # a dispatcher that groups only: the flusher and the digests

            self.groups = Groups(self, grouping, flusher=group_flusher)
        elif group_flusher not in ("process", "worker"):
            from ._groups import check_flusher  # a cold path: a wrong setting

            check_flusher(group_flusher)
        #: The lifecycle gates a firing alert meets on each channel routing selected, in order.
        self.gates: list[Any] = [
            gate for gate in (self.inhibit_gate, self.silence_gate, self.groups) if gate is not None
        ]

    def after_fork(self) -> None:
        self._lock = allocate_lock()

    # -- the state backend: throttle budgets and de-duplication windows -----------------------------
    @property
    def state(self) -> StateBackend:
        """The backend of throttle budgets and de-duplication windows (memory unless configured)."""
        state = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    from .state import MemoryState  # the default, made on the first policy

                    self._state = MemoryState(clock=self._clock)
                state = self._state
        return state

    @property
    def configured_state(self) -> StateBackend | None:
        """The state backend if one was given or made (``None``: none yet)."""
        return self._state

    # -- the chain ---------------------------------------------------------------------------------
    @property
    def gated(self) -> bool:
        """Whether a firing alert meets any lifecycle gate (else the chain costs nothing)."""
        return bool(self.gates)

    def gate(
        self, alert: Alert, plan: list[tuple[str, Any, ChannelOutcome | None]], all_channels: Sequence[Any], every: bool
    ) -> tuple[list[tuple[str, Any, ChannelOutcome | None]], dict[str, Any] | None]:
        """The gates after routing, per channel of ``plan``: ``(plan, routed)``.

        A firing alert meets :attr:`gates` on every channel routing selected (a channel it skips
        still shows the alert to the inhibition gate: a source routed nowhere still inhibits). A
        resolve or acknowledge goes through :meth:`route_resolve` (``every``: ``send`` named no
        channel, so every configured channel is considered, whatever the default channels say)."""
        now = self.wall_clock()
        if alert.status != "firing":
            if not self.keeps_log:
                return plan, None  # the worker routes it by its own log
            return self.route_resolve(alert, plan, all_channels, every, now)
        inhibit = self.inhibit_gate
        gated = []
        for name, channel, skip in plan:
            if skip is None and channel is not None:
                for gate in self.gates:
                    verdict = gate.check(alert, name, now)
                    if not verdict.admitted:
                        skip = skipped(name, verdict, now)
                        break
            elif inhibit is not None:
                self._observe_source(inhibit, alert, now, name)
            gated.append((name, channel, skip))
        return gated, None

    def route_resolve(
        self,
        alert: Alert,
        plan: list[tuple[str, Any, ChannelOutcome | None]],
        all_channels: Sequence[Any],
        every: bool,
        now: float,
    ) -> tuple[list[tuple[str, Any, ChannelOutcome | None]], dict[str, Any] | None]:
        """The *unmatched* gate: a resolve or acknowledge goes to exactly the channels whose
        notification log shows the firing alert delivered (``routed``: channel name -> its log
        entry, whose handle lets the transport edit the message), whatever routing and silences say
        now; the other channels skip it as ``"unmatched"``. An unreadable log: today's routing (a
        stray resolve beats a lost one)."""
        from .lifecycle.nlog import fingerprint_key  # a resolve's path only

        fingerprint = alert.fingerprint
        key = fingerprint_key(fingerprint)
        if every:
            plan = [(c.name, c, None) for c in all_channels] + [p for p in plan if p[1] is None]
        try:
            log = self.notification_log
            entries = {name: log.get(key, name) for name, channel, _ in plan if channel is not None}
        except Exception as exc:  # noqa: BLE001 - an unreadable log: today's routing
            self.quiet.warning(
                "alert notification log could not be read (%s): the %s alert follows routing",
                type(exc).__name__,
                alert.status,
            )
            return plan, None
        inhibit = self.inhibit_gate
        groups = self.groups
        routed: dict[str, Any] = {}
        gated: list[tuple[str, Any, ChannelOutcome | None]] = []
        unmatched = Verdict.skip(
            "unmatched", detail=f"unmatched: this channel did not deliver the firing alert {fingerprint[:16]}"
        )
        for name, channel, skip in plan:
            if inhibit is not None:
                self._observe_source(inhibit, alert, now, name)  # a resolved source stops inhibiting
            if groups is not None and channel is not None and name in groups.groupers:
                verdict = groups.check(alert, name, now)  # a resolve of an alert its group holds: held
                if not verdict.admitted:
                    gated.append((name, channel, skipped(name, verdict, now)))
                    continue
            entry = entries.get(name)
            if channel is not None and entry is not None and fingerprint in entry.firing:
                routed[name] = entry
                skip = None
            elif channel is not None:
                skip = skipped(name, unmatched)
            gated.append((name, channel, skip))
        return gated, routed

    def _observe_source(self, gate: Any, alert: Alert, now: float, channel: str) -> None:
        try:
            gate.observe(alert, now, channel)
        except Exception as exc:  # noqa: BLE001 - a failing store must not stop alerts
            self.logger.warning("alert inhibition sources could not be written (%s)", type(exc).__name__)

    def admit(self, name: str, route: Route, alert: Alert) -> tuple[ChannelOutcome | None, Any]:
        """The policy gate for one channel: ``(skip outcome or None, de-duplication claim)``."""
        now = time.time()
        verdict = self.policy.check_route(name, route, alert, now)
        if verdict.admitted:
            return None, verdict.claim
        return skipped(name, verdict, now), None

    async def aadmit(
        self, name: str, route: Route, alert: Alert, pool: WorkerPool
    ) -> tuple[ChannelOutcome | None, Any]:
        """:meth:`admit` for ``asend``: a blocking state backend is asked in ``pool``, waited for
        at most :data:`STATE_WAIT` (then the alert goes without its policies; a claim that comes
        later is handed back)."""
        if not self.state.blocking:
            return self.admit(name, route, alert)
        from .pool import wait_task  # the asyncio path only

        task = pool.submit(self.admit, name, route, alert)
        if await wait_task(task, STATE_WAIT) and task.error is None:
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

    def release(self, claim: Any) -> None:
        """Hand a de-duplication claim back (its delivery failed, or its fate is unknown)."""
        if claim is None:
            return
        try:
            self.state.release(*claim)
        except Exception as exc:  # noqa: BLE001 - the claim expires by itself
            self.logger.warning("alert state backend failed to release a claim: %s", type(exc).__name__)

    def reclaim(self, name: str, route: Route | None, alert: Alert) -> None:
        """Take a claim again for an alert delivered after its caller gave up on it, so its next
        occurrence within the window is the duplicate it really is. Only the claim: the alert
        already spent its throttle budget when it was admitted."""
        if route is None or route.dedup_window is None:
            return
        self.admit(name, Route(dedup_window=route.dedup_window), alert)

    # -- the lifecycle records: notification log, silences, inhibition sources ------------------------
    def _lifecycle_spec(self) -> Any:
        """Where the lifecycle records live: ``lifecycle_state``, else beside ``state``."""
        if self._lifecycle_state is not None:
            return self._lifecycle_state
        state = self._state
        if state is None or type(state).__name__ == "MemoryState":
            return None  # this process's memory
        # a shared state given only (loaded by then): admission's import loads no state
        from .state import RedisState, SQLiteState

        if isinstance(state, SQLiteState):
            return "sqlite:///" + os.path.abspath(state.path).lstrip("/")
        if isinstance(state, RedisState):
            return state.client  # its bounded timeouts; keys under the state's prefix
        return None

    def _lifecycle_store(self, kind: str) -> Any:
        """The record store of one ``kind`` of lifecycle records (see ``lifecycle_state``). One
        outside this process is behind a circuit breaker: a store that failed is not asked again for
        the state's ``retry_interval`` (5 s by default), so a silent Redis costs one timeout per
        interval, not one per alert."""
        # lifecycle loads each of its modules on first use
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
        if self._lifecycle_state is None and hasattr(state, "down_until"):  # the Redis state's own server

            def down() -> bool:
                return time.monotonic() < (getattr(state, "down_until", 0.0) or 0.0)

        return GuardedStore(store, getattr(state, "retry_interval", 5.0) or 5.0, down=down)

    def _open_lifecycle(self, spec: Any, kind: str) -> Any:
        from .lifecycle import open_store  # lifecycle loads each of its modules on first use

        options = {}
        if spec is not None and (not isinstance(spec, str) or spec.startswith(("redis://", "rediss://", "unix://"))):
            prefix = self._lifecycle_prefix or f"{getattr(self._state, 'prefix', 'alert-infra')}:lifecycle"
            options["prefix"] = prefix
        return open_store(spec, kind, **options)

    def _make_silence_gate(self, silences: Any) -> Any:
        # silences only: lifecycle loads each of its modules on first use
        from .lifecycle import Silence, SilenceGate, SilenceStore, silences_from_config

        if isinstance(silences, SilenceGate):
            return silences
        if isinstance(silences, SilenceStore):
            return SilenceGate(silences, logger_=self.quiet)
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
        return SilenceGate(store, logger_=self.quiet)

    @property
    def silences(self) -> Any:
        """The :class:`~alert_infra.lifecycle.SilenceStore` of the silence gate (``None``: no gate)."""
        gate = self.silence_gate
        return gate.silences if gate is not None else None

    @property
    def notification_log(self) -> Any:
        """The :class:`~alert_infra.lifecycle.NotificationLog` (opened on first use)."""
        log = self._nlog
        if log is None:
            with self._lock:
                if self._nlog is None:
                    # the first resolve's log only: lifecycle loads each of its modules on first use
                    from .lifecycle import MemoryStore, NotificationLog

                    spec = self._lifecycle_spec()
                    # Entries outlive a group's repeats: at least twice the longest repeat_interval.
                    groupers = self.groups.groupers.values() if self.groups is not None else ()
                    repeat = max((g.policy.repeat_interval for g in groupers), default=None)
                    retention: dict[str, Any] = {"resolve_window": self.resolve_window}
                    if repeat is not None:
                        retention["repeat_interval"] = repeat
                    if spec is None or spec == "memory":
                        # Bounded: a process sending endless distinct alerts keeps the newest entries.
                        spec = MemoryStore("nlog", max_records=MAX_LOG_ENTRIES_IN_MEMORY, copy=False)
                        self._logged = {}  # this process alone writes it: repeats can skip the write
                        self._nlog = NotificationLog(spec, **retention)
                    else:
                        self._nlog = NotificationLog(self._lifecycle_store("nlog"), **retention)
                log = self._nlog
        return log

    def log_delivery(self, alert: Alert, name: str, handle: Any) -> None:
        """Record a delivery in the notification log (firing: the fingerprint now firing on the
        channel; resolved: no longer; acknowledged: still firing, with the provider's new handle
        when the acknowledge posted a new message, see
        :meth:`~alert_infra.lifecycle.nlog.NotificationLog.record_acknowledged`). Never raises: a
        log that fails costs a later resolve its routing (it is then skipped as unmatched), never
        this delivery."""
        if not self.keeps_log:
            return
        fingerprint = alert.fingerprint
        key = "fp:" + fingerprint  # lifecycle.nlog.fingerprint_key: imported by nothing on this path
        try:
            log = self.notification_log
            logged = self._logged
            if alert.status == "acknowledged":
                written = handle is not None and log.record_acknowledged(fingerprint, name, handle, key)
                if written and logged is not None:
                    logged.pop((name, key), None)  # the firing alert's next repeat writes its handle again
                return
            if alert.status == "firing":
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
            self.quiet.warning("alert notification log failed for channel %s (%s)", name, type(exc).__name__)

    def close(self) -> None:
        """Close the lifecycle stores (a store may still be used: it reconnects)."""
        stores = [
            getattr(self._nlog, "records", None),
            getattr(self.silences, "records", None),
            getattr(self.inhibit_gate, "records", None),
        ]
        if self.groups is not None:
            stores.extend(self.groups.stores())
        for records in stores:
            if records is not None:
                try:
                    records.close()
                except Exception as exc:  # noqa: BLE001
                    self.logger.warning("alert lifecycle store failed to close: %s", type(exc).__name__)


class _QuietLogger:
    """A logger's ``warning`` at most once a minute per message (a lifecycle store that is down must
    not log once per alert); everything else as the logger does."""

    def __init__(self, admission: Admission) -> None:
        self._owner = weakref.ref(admission)  # its logger as it is now (a setter may change it)
        self._last: dict[str, float] = {}  # message -> when it was last logged

    @property
    def _logger(self) -> Any:
        owner = self._owner()
        if owner is not None:
            return owner.logger
        return default_logger()  # the owner is gone: nothing else holds a logger

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


def _release_late_claim(admission: Admission) -> Any:
    """For an admission that answered after ``asend`` stopped waiting: hand its claim back."""
    ref = weakref.ref(admission)

    def late(task: Task) -> None:
        owner = ref()
        if owner is not None and task.error is None and task.value:
            owner.release(task.value[1])

    return late
