"""Grouping in delivery: the group gate of a dispatcher, the delivery of its digests, and the
process's flusher that makes flushes happen on time.

:class:`Groups` is the last lifecycle gate of :class:`~alert_infra.admission.Admission` (after
inhibition and silences, before de-duplication and throttling): on a channel with a
:class:`~alert_infra.lifecycle.GroupPolicy` a firing alert joins its group and its outcome is
``"held"``; the flushes of the group's :class:`~alert_infra.lifecycle.Grouper` (Alertmanager's
timing, see :mod:`alert_infra.lifecycle.grouping`) produce :class:`~alert_infra.lifecycle.Notification`
digests, each delivered as one alert (:meth:`Notification.to_alert
<alert_infra.lifecycle.Notification.to_alert>`) to its channel *below* the gate: tries and retries
as configured, no de-duplication or throttle, the notification log recording it (so the group's
resolved digest edits or follows the firing one), counted in ``stats()`` and written to the audit
trail like any dispatch.

Where the groups live: beside the dispatcher's ``state`` (its lifecycle store, kind ``groups``,
with a small index of their timers, kind ``group_timers``). With memory state they are this
process's own. With a SQLite file or Redis every process on it shares each group: each change is
one atomic update of the group's record, and before a flush is delivered the process claims
``(channel, group, tick)`` in the state backend (:meth:`StateBackend.admit`, as a de-duplication
window): exactly one process sends each notification.

The flusher (:data:`FLUSHER`): one daemon thread per process that sleeps until the earliest due
group of the dispatchers it serves (woken early when an alert makes a group due sooner), reads a
shared store's timer index every :data:`GROUP_POLL` seconds (groups other processes made, or left
behind when they stopped), flushes what is due and delivers the digests. A forked child gets a
flusher of its own on its first grouped alert. It serves a dispatcher with ``group_flusher =
"process"`` (the default) from its creation; with ``"worker"`` only where :meth:`Groups.serve`
is called (``alert-infra worker``, a Celery worker process).

At exit: with ``"process"``, the process flushes the groups holding alerts no digest told yet
(:meth:`Grouper.flush_pending`), within :data:`EXIT_FLUSH_TIMEOUT` seconds in all; what is left
says so once on standard error (with a shared store it stays there for the next process; in
memory it is lost). :meth:`AlertDispatcher.close` does the same for its groups.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
import threading
import time
import weakref
from collections.abc import Mapping as MappingABC

# This module is imported only when a dispatcher groups alerts (admission.Admission imports it
# lazily), so it loads what grouping needs up front.
from ._checks import did_you_mean
from ._lifecycle import ProcessSingleton, on_fork_in_child
from .exceptions import AlertConfigurationError
from .lifecycle.gates import ADMIT
from .lifecycle.grouping import CONFIG_KEYS, Grouper, GroupPolicy
from .lifecycle.stores import MemoryStore
from .result import DeliveryResult

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any, Callable

    from .admission import Admission
    from .alert import Alert
    from .lifecycle.gates import Verdict
    from .lifecycle.grouping import Notification

__all__ = [
    "CLAIM_WINDOW",
    "EXIT_FLUSH_TIMEOUT",
    "FLUSHER",
    "FLUSHERS",
    "GROUP_POLL",
    "MAX_SLEEP",
    "GroupFlusher",
    "Groups",
    "check_flusher",
]

#: ``[alert_infra] group_flusher``: who flushes groups on time and at exit.
FLUSHERS = ("process", "worker")
#: The longest a process spends flushing its pending groups at exit (or in ``close()``), in all.
EXIT_FLUSH_TIMEOUT = 5.0
#: How often a flusher reads a shared store's timer index (groups other processes made), seconds.
GROUP_POLL = 1.0
#: The longest the flusher sleeps without looking (a clock that jumped, a wake-up that was lost).
MAX_SLEEP = 60.0
#: How long a claim on one flush of one group holds in the state backend (seconds). The flush
#: itself is an atomic update, so a process that claimed and died is replaced after this long.
CLAIM_WINDOW = 60.0


def check_flusher(value: Any) -> str:
    """``value`` if it is one of :data:`FLUSHERS`, else a configuration error that says which."""
    if value in FLUSHERS:
        return str(value)

    shown = f" {value[:30]!r}" if isinstance(value, str) else f" a {type(value).__name__}"
    hint = did_you_mean(value, FLUSHERS) if isinstance(value, str) else ""
    raise AlertConfigurationError(
        f'group_flusher: "process" (each process flushes its groups, and at exit) or "worker" (a worker '
        f"owns flushes), got{shown}{hint}"
    )


def _policies(grouping: Any, resolve_timeout: float) -> dict[str, GroupPolicy]:
    """``{channel: GroupPolicy}`` from ``AlertDispatcher(grouping=...)``: a policy, or a mapping of
    its settings (``group_by``, ``group_wait``, ...; ``resolve_timeout`` defaults to the dispatcher's)."""

    if not isinstance(grouping, MappingABC):
        raise AlertConfigurationError(
            'grouping: a mapping of channel names to GroupPolicy objects or settings, e.g. {"ops": {"group_by": '
            f'["source"]}}}}, got a {type(grouping).__name__}'
        )
    policies: dict[str, GroupPolicy] = {}
    for name, value in grouping.items():
        if not isinstance(name, str):
            raise AlertConfigurationError(f"grouping: channel names are strings, got a {type(name).__name__}")
        if isinstance(value, GroupPolicy):
            policies[name] = value
            continue
        if not isinstance(value, MappingABC):
            raise AlertConfigurationError(
                f"grouping[{name!r}]: a GroupPolicy or a mapping of its settings, got a {type(value).__name__}"
            )
        for key in value:
            if key not in CONFIG_KEYS:
                hint = did_you_mean(str(key), CONFIG_KEYS)
                raise AlertConfigurationError(
                    f"grouping[{name!r}]: unknown setting {str(key)[:40]!r}{hint} (known: {', '.join(CONFIG_KEYS)})"
                )
        if "group_by" not in value:
            raise AlertConfigurationError(
                f'grouping[{name!r}]: group_by is required (e.g. ["source"]; [] for one group, ["..."] for each alert)'
            )
        settings = dict(value)
        settings.setdefault("resolve_timeout", resolve_timeout)
        try:
            policies[name] = GroupPolicy.from_config(settings)
        except AlertConfigurationError as exc:
            raise AlertConfigurationError(f"grouping[{name!r}].{exc}") from None
    return policies


class _PastTheGates:
    """What a digest's delivery carries instead of a log entry: no handle (a new message), and,
    like a routed resolve, no de-duplication or throttle (the digest is the rate limit)."""

    handle = None


_PAST = _PastTheGates()


class Groups:
    """The grouping gate of one dispatcher and the delivery of its digests (see the module doc).

    Made by :class:`~alert_infra.admission.Admission` from ``AlertDispatcher(grouping=...)``;
    ``dispatcher.groups`` is this object.
    """

    name = "group"

    def __init__(self, admission: Admission, grouping: Any, *, flusher: str = "process") -> None:

        self.flusher = check_flusher(flusher)
        self.policies = _policies(grouping, admission.resolve_timeout)
        self.clock: Callable[[], float] = admission.wall_clock
        self._admission = weakref.ref(admission)
        self._dispatcher: Any = None  # weakref.ref to the dispatcher, set by attach()
        records = timers = None
        spec = admission._lifecycle_spec()
        if spec is not None and spec != "memory":
            records = admission._lifecycle_store("groups")
            timers = admission._lifecycle_store("group_timers")
            if isinstance(records, MemoryStore):  # a store of another kind was given: this process only
                records = timers = None
        claim = self._claim if records is not None else None
        # load=False: a store that fails now must not fail the dispatcher; the flusher's first pass
        # reads what the store holds (reload), and tries again at each poll until it can.
        self.groupers: dict[str, Grouper] = {
            name: Grouper(name, policy, records, timers=timers, claim=claim, load=False)
            for name, policy in self.policies.items()
        }
        self._loaded = records is None  # with a store: reload() has not read it yet
        self.served = False

    def attach(self, dispatcher: Any) -> None:
        """Deliver digests through ``dispatcher`` (held weakly), and, with ``group_flusher =
        "process"``, have the process's flusher serve it (unless a test injected the clock).

        Raises:
            AlertConfigurationError: ``grouping`` names a channel the dispatcher does not have.
        """
        known = {c.name for c in dispatcher._all_channels()} | set(dispatcher.routes)
        for name in self.policies:
            if name not in known:
                raise AlertConfigurationError(
                    f"grouping: no channel named {name[:64]!r}{did_you_mean(name, known)} "
                    f"(known: {', '.join(sorted(known)) or 'none'})"
                )
        self._dispatcher = weakref.ref(dispatcher)
        if self.flusher == "process" and self.clock is time.time:
            self.serve()

    def serve(self) -> None:
        """Have this process's flusher thread flush these groups on time (what ``alert-infra
        worker`` and Celery workers call for ``group_flusher = "worker"``)."""
        self.served = True
        FLUSHER.get().serve(self)

    @property
    def shared(self) -> bool:
        """Whether the groups live in a store shared with other processes."""
        return any(g.records is not None for g in self.groupers.values())

    def stores(self) -> list[Any]:
        found: dict[int, Any] = {}
        for grouper in self.groupers.values():
            for store in (grouper.records, grouper.timers):
                if store is not None:
                    found[id(store)] = store
        return list(found.values())

    # -- the gate ------------------------------------------------------------------------------------
    def check(self, alert: Alert, channel: str, now: float, *, delivered: bool = False) -> Verdict:
        """``held`` for an alert that joins (or, resolved, is in) a group of ``channel``; admitted
        otherwise, and when the group store fails (the alert is then sent on its own)."""
        grouper = self.groupers.get(channel)
        if grouper is None:
            return ADMIT
        try:
            verdict = grouper.add(alert, now)
        except Exception as exc:  # noqa: BLE001 - a failing store must not cost the alert: sent alone
            self._warn("alert groups could not be read or written (%s): the alert is sent on its own", exc)
            return ADMIT
        if verdict.until is not None and self.served:
            FLUSHER.get().wake(verdict.until)
        return verdict

    def _warn(self, message: str, exc: BaseException) -> None:
        admission = self._admission()
        if admission is not None:
            admission.quiet.warning(message, type(exc).__name__)

    def _claim(self, key: str) -> bool:
        """Claim one flush (``channel|group|tick``) in the state backend: False when another
        process has it. A state that fails lets the flush go on (the group's atomic update still
        makes exactly one process flush it)."""

        admission = self._admission()
        if admission is None:
            return False
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        try:
            verdict = admission.state.admit(f"grp:{digest}", CLAIM_WINDOW, ())[0]
        except Exception as exc:  # noqa: BLE001 - the update decides alone
            self._warn("alert state backend failed to claim a group flush (%s)", exc)
            return True
        return bool(verdict != "duplicate")

    # -- flushing ------------------------------------------------------------------------------------
    def next_due(self) -> float | None:
        """When the earliest group this process knows of is due (``None``: none)."""
        return min((t for g in self.groupers.values() if (t := g.next_due()) is not None), default=None)

    def pending(self) -> int:
        """How many groups hold alerts no digest told yet (what an exit flush sends)."""
        return sum(len(g.pending) for g in self.groupers.values())

    def refresh(self) -> None:
        """Learn the groups of a shared store (other processes', a previous run's) and their timers."""
        if not self.shared:
            return
        try:
            if not self._loaded:
                for grouper in self.groupers.values():
                    grouper.reload()  # the groups themselves, once: the timer index is repaired
                self._loaded = True
                return
            read: dict[int, Any] = {}
            for grouper in self.groupers.values():
                timers = grouper.timers
                if timers is not None and id(timers) not in read:
                    read[id(timers)] = timers.items()
                grouper.refresh(read.get(id(timers)) if timers is not None else None)
        except Exception as exc:  # noqa: BLE001 - the next poll tries again
            self._warn("alert groups could not be read (%s): flushes wait until they can", exc)

    def flush(
        self, now: float | None = None, *, pending: bool = False, until: Callable[[], bool] | None = None
    ) -> list[DeliveryResult]:
        """Flush what is due at ``now`` (default: the clock) and deliver the digests; the results, one
        per digest. ``pending=True``: flush now every group holding alerts no digest told yet (at
        exit, in ``close()``), stopping once ``until()`` says so."""
        if self._dispatcher is None or self._dispatcher() is None:
            return []  # no dispatcher to deliver through (dropped): the groups stay as they are
        when = self.clock() if now is None else now
        results: list[DeliveryResult] = []
        for grouper in self.groupers.values():
            # One group at a time, each digest delivered before the next group is flushed: a bound
            # that runs out (at exit) leaves the groups not reached untouched, still pending.
            for key in grouper.pending if pending else grouper.due_keys(when):
                if until is not None and until():
                    return results
                try:
                    note = grouper.flush_group(key, when, pending=pending)
                except Exception as exc:  # noqa: BLE001 - the next pass tries again
                    self._warn("alert groups could not be flushed (%s): the next pass tries again", exc)
                    break
                if note is not None:
                    results.append(self.deliver(note))
        return results

    def deliver(self, note: Notification) -> DeliveryResult:
        """Send one digest to its channel past the gates (see the module doc)."""

        dispatcher = self._dispatcher() if self._dispatcher is not None else None
        if dispatcher is None:
            return DeliveryResult()
        alert = note.to_alert()
        entry: Any = _PAST
        admission = self._admission()
        if note.status == "resolved" and admission is not None:
            # The group's last digest: edit (update) the message the firing one posted, by its handle.
            try:
                found = admission.notification_log.get("fp:" + alert.fingerprint, note.channel)
            except Exception:  # noqa: BLE001 - sent as a new message then
                found = None
            if found is not None and alert.fingerprint in found.firing:
                entry = found
        result: DeliveryResult = dispatcher._deliver_released(alert, note.channel, entry)
        return result


class GroupFlusher:
    """The process's flusher thread (see the module doc): started on demand, one per process (a
    forked child starts its own on its first grouped alert), ended when no dispatcher it serves
    is left."""

    def __init__(self) -> None:
        self._targets: list[weakref.ReferenceType[Groups]] = []
        self._reset()
        on_fork_in_child(self, GroupFlusher._reset)

    def _reset(self) -> None:

        # In a forked child too: the thread stayed in the parent, and its lock may have been held.
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._kicked = False
        self._sleep_until = float("inf")  # wall-clock seconds the thread sleeps until
        self._exit_deadline: float | None = None  # monotonic: an exit flush is asked for
        self._exit_done = False

    # -- the callers' side ---------------------------------------------------------------------------
    def serve(self, groups: Groups) -> None:
        with self._cond:
            self._targets = [r for r in self._targets if r() is not None and r() is not groups]
            self._targets.append(weakref.ref(groups))
            self._kicked = True
            self._ensure()
            self._cond.notify_all()
        if groups.flusher == "process":
            _hook_exit()

    def forget(self, groups: Groups) -> None:
        with self._cond:
            self._targets = [r for r in self._targets if r() is not None and r() is not groups]

    def wake(self, due: float) -> None:
        """A group is due at ``due`` (wall clock): wake the thread if it sleeps past it."""
        if due >= self._sleep_until and self._thread is not None:
            return
        with self._cond:
            self._kicked = True
            self._ensure()
            self._cond.notify_all()

    def targets(self) -> list[Groups]:
        """The groups served whose dispatcher is still alive."""
        found = []
        for ref in list(self._targets):
            groups = ref()
            dispatcher = groups._dispatcher() if groups is not None and groups._dispatcher is not None else None
            if dispatcher is not None and groups is not None:
                found.append(groups)
        return found

    def _ensure(self) -> None:  # with self._cond held

        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        thread = threading.Thread(target=self._loop, name="alert-infra-group-flusher", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutdown: the exit flush runs in the caller
            self._thread = None
            return
        self._thread = thread

    # -- the thread ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        polled: dict[int, float] = {}
        while True:
            with self._cond:
                if self._exit_deadline is not None:
                    break
                targets = self.targets()
                if not targets:
                    self._thread = None
                    return
                self._kicked = False
            self._pass(targets, polled)
            wait = self._sleep_for(targets)
            del targets  # asleep, the thread holds no dispatcher's groups (a dropped one is collected)
            with self._cond:
                if self._exit_deadline is not None:
                    break
                if not self._kicked and wait > 0:
                    self._sleep_until = time.time() + wait
                    self._cond.wait(wait)
                self._sleep_until = float("inf")
        self._exit_flush()

    def _pass(self, targets: list[Groups], polled: dict[int, float]) -> None:
        now = time.monotonic()
        for groups in targets:
            if groups.shared and now - polled.get(id(groups), float("-inf")) >= GROUP_POLL:
                polled[id(groups)] = now
                groups.refresh()
            try:
                groups.flush()
            except Exception as exc:  # noqa: BLE001 - the flusher survives anything
                groups._warn("alert group flush failed (%s)", exc)

    def _sleep_for(self, targets: list[Groups]) -> float:
        wait = MAX_SLEEP
        now = time.time()
        for groups in targets:
            due = groups.next_due()
            if due is not None:
                wait = min(wait, due - now)
            if groups.shared:
                wait = min(wait, GROUP_POLL)
        return max(wait, 0.0)

    # -- exit ----------------------------------------------------------------------------------------
    def _exit_flush(self) -> None:
        """In the thread, at exit: flush the pending groups of ``"process"`` dispatchers."""
        deadline = self._exit_deadline or time.monotonic() + EXIT_FLUSH_TIMEOUT
        try:
            flush_pending([g for g in self.targets() if g.flusher == "process"], deadline)
        finally:
            with self._cond:
                self._exit_done = True
                self._thread = None
                self._cond.notify_all()

    def at_exit(self) -> None:
        """The ``atexit`` hook: flush the pending groups within :data:`EXIT_FLUSH_TIMEOUT`, in the
        flusher thread when it runs (Python 3.12+ starts no thread at exit), else here."""
        deadline = time.monotonic() + EXIT_FLUSH_TIMEOUT
        targets = [g for g in self.targets() if g.flusher == "process" and g.pending()]
        if not targets:
            return
        with self._cond:
            thread = self._thread
            running = thread is not None and thread.is_alive() and thread.ident != _current_ident()
            if running:
                self._exit_deadline = deadline
                self._exit_done = False
                self._cond.notify_all()
                while not self._exit_done and time.monotonic() < deadline:
                    self._cond.wait(max(deadline - time.monotonic(), 0.0))
        if not running:
            flush_pending(targets, deadline)
        left = sum(g.pending() for g in targets)
        if left:
            where = (
                "they stay in the state for the next process to flush"
                if all(g.shared for g in targets)
                else "groups in this process's memory are lost"
            )
            try:
                sys.stderr.write(
                    f"alert-infra: {left} alert group(s) not flushed within {EXIT_FLUSH_TIMEOUT:g}s at exit: {where}\n"
                )
            except Exception:  # noqa: BLE001, S110 - standard error closed: nothing more can be done
                pass
        audit = sys.modules.get("alert_infra.audit")
        if audit is not None:  # the digests' audit records were queued after the trail's own exit flush
            try:
                audit._flush_at_exit()
            except Exception:  # noqa: BLE001, S110 - at exit nobody can be told
                pass


def flush_pending(targets: list[Groups], deadline: float) -> None:
    """Flush the pending groups of ``targets``, stopping once the monotonic ``deadline`` passes."""

    def late() -> bool:
        return time.monotonic() >= deadline

    for groups in targets:
        if late():
            return
        try:
            groups.flush(pending=True, until=late)
        except Exception as exc:  # noqa: BLE001 - the others still go
            groups._warn("alert groups could not be flushed at exit (%s)", exc)


def _current_ident() -> int | None:
    return threading.get_ident()


_exit_hooked: list[int] = []  # the pid that registered the atexit hook


def _hook_exit() -> None:
    if _exit_hooked and _exit_hooked[0] == os.getpid():
        return
    if not _exit_hooked:  # a forked child inherits the parent's atexit hooks: once per process image
        atexit.register(_at_exit)
    _exit_hooked[:] = [os.getpid()]


def _at_exit() -> None:
    flusher = FLUSHER.peek()
    if flusher is not None:
        flusher.at_exit()


#: The process's flusher (made on first use).
FLUSHER = ProcessSingleton(GroupFlusher)
