"""Observation of dispatches: per-channel counters, the audit trail and the ``after_dispatch`` hooks.

The dispatcher hands every :class:`~alert_infra.result.DeliveryResult` to its :class:`Observer`
once the channels are done. Counting is in the caller's thread (a dict update under a lock); the
audit record and the plugins' hooks run in the process's hook pool (:func:`hook_pool`, 8 threads
shared by every dispatcher), the caller waiting for them at most ``hook_timeout``. A hook that
sends an alert itself delivers, but does not run the hooks again for that inner dispatch
(:data:`IN_HOOKS`: no recursion). Hooks that hang are written off (at most
:data:`MAX_OVERDUE_HOOKS` at once) and, past :data:`MAX_QUEUED_HOOKS` waiting dispatches, dropped
and counted, never allowed to grow memory for ever.
"""

from __future__ import annotations

import os
import time
from _thread import allocate_lock
from contextvars import ContextVar

from ._lifecycle import ProcessSingleton

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Iterable
    from typing import Any

    from .alert import Alert
    from .pool import Task, WorkerPool
    from .result import ChannelOutcome, DeliveryResult

__all__ = [
    "GROUPED_STAT_KEYS",
    "IN_HOOKS",
    "MAX_OVERDUE_HOOKS",
    "MAX_QUEUED_HOOKS",
    "STAT_KEYS",
    "Observer",
    "hook_pool",
]

#: Dispatches whose hooks may wait for a hook thread (all of them busy with hooks that do not
#: return); beyond it, a dispatch's hooks and audit record are dropped and counted
#: (``AlertDispatcher.hooks_dropped``, logged at ERROR).
MAX_QUEUED_HOOKS = 10_000
#: Hook threads that may hang at once (written off and replaced); beyond, slow hooks hold the
#: shared hook pool's 8 threads and later hooks queue.
MAX_OVERDUE_HOOKS = 32
#: The counters of :meth:`AlertDispatcher.stats`, per channel (and ``held`` on a dispatcher with
#: grouping: :data:`GROUPED_STAT_KEYS`).
STAT_KEYS = ("sent", "failed", "retried", "throttled", "deduplicated", "skipped")
GROUPED_STAT_KEYS = (*STAT_KEYS, "held")
_SUPPRESSED_STAT = {"dedup": "deduplicated", "throttle": "throttled"}  # any other skip counts as "skipped"

#: Set while the after-dispatch hooks of a dispatch run (in their thread or task): a dispatch
#: made from inside a hook delivers, but does not run the hooks again (no recursion).
IN_HOOKS: ContextVar[bool] = ContextVar("alert_infra_in_hooks", default=False)
_PLUGINS: list[Any] = [None]  # alert_infra.plugins, once loaded


def default_logger() -> logging.Logger:
    """The ``alert_infra`` logger, imported on the first warning: a dispatch that never logs never
    imports :mod:`logging`."""
    import logging  # the first warning only

    return logging.getLogger("alert_infra")


class Logged:
    """A collaborator of the dispatcher that logs with the dispatcher's logger (``alert_infra``
    unless it was given one; the dispatcher's ``logger`` setter reaches every collaborator)."""

    _logger: logging.Logger | None

    @property
    def logger(self) -> logging.Logger:
        logger = self._logger
        if logger is None:
            logger = self._logger = default_logger()
        return logger

    @logger.setter
    def logger(self, value: logging.Logger | None) -> None:
        self._logger = value


class Observer(Logged):
    """What one dispatcher counts and tells after each dispatch (see the module's docstring)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger
        self._stats: dict[str, dict[str, int]] = {}
        #: The counters each channel has (:data:`GROUPED_STAT_KEYS` once the dispatcher groups).
        self.keys: tuple[str, ...] = STAT_KEYS
        self._lock = allocate_lock()
        self.hooks_dropped = 0
        self._env_plugins: bool | None = None

    def after_fork(self) -> None:
        self._lock = allocate_lock()

    # -- statistics ---------------------------------------------------------------------------
    def count(self, outcomes: Iterable[ChannelOutcome]) -> None:
        stats = self._stats
        with self._lock:
            for outcome in outcomes:
                status = outcome.status
                if status == "skipped":
                    key = _SUPPRESSED_STAT.get(outcome.suppressed_by or "", "skipped")
                elif status == "failed" and outcome.error == "UnknownChannelError":
                    continue  # names that match no channel: not a channel, and unbounded in number
                else:
                    key = status
                counts = stats.get(outcome.name)
                if counts is None:
                    counts = stats[outcome.name] = dict.fromkeys(self.keys, 0)
                if key not in counts:  # held: counted by a dispatcher that groups
                    counts[key] = 0
                counts[key] += 1
                if outcome.attempts > 1:
                    counts["retried"] += outcome.attempts - 1

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: dict(counts) for name, counts in self._stats.items()}

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()

    # -- the audit trail and the hooks -----------------------------------------------------------
    def _hooks(self) -> Any:
        plugins = _PLUGINS[0]
        if plugins is None:
            from . import plugins  # once per process: the plugin host is looked up on every dispatch

            _PLUGINS[0] = plugins
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

    def observe(self, audit: Any, alert: Alert, result: DeliveryResult, hook_timeout: float) -> None:
        """Record and announce a dispatch, the caller waiting at most ``hook_timeout``."""
        host = None if IN_HOOKS.get() else self._hooks()
        if audit is None and host is None:
            return
        redacted = alert.redacted()
        if audit is not None and getattr(audit, "nonblocking", False):
            self._record(audit, redacted, result)  # queues the write and returns (AuditTrail)
            audit = None
        if audit is None and host is None:
            return
        pool = hook_pool()
        if not self._hooks_admitted(pool):
            return
        task = pool.submit(self._observe_now, audit, host, redacted, result, time.perf_counter() + hook_timeout)
        if not task.wait(hook_timeout):
            _leave_hooks(pool, task)
            self.logger.warning(
                "alert after-dispatch hooks still running after %gs: they finish in the background", hook_timeout
            )

    async def aobserve(self, audit: Any, alert: Alert, result: DeliveryResult, hook_timeout: float) -> None:
        """:meth:`observe` for ``asend``: the audit and the hooks off the event loop's thread;
        awaitables the hooks return awaited on it; all within ``hook_timeout``."""
        import asyncio  # the asyncio path only

        from .pool import wait_task  # the asyncio path only: the pool's asyncio helpers

        host = None if IN_HOOKS.get() else self._hooks()
        if audit is None and host is None:
            return
        redacted = alert.redacted()
        if audit is not None and getattr(audit, "nonblocking", False):
            self._record(audit, redacted, result)
            audit = None
        until = time.perf_counter() + hook_timeout
        pending: list[tuple[str, Any]] = []
        if audit is not None or host is not None:
            # A database write or a plugin's code: off the event loop's thread, bounded.
            pool = hook_pool()
            if not self._hooks_admitted(pool):
                return
            task = pool.submit(self._call_hooks, audit, host, redacted, result)
            if not await wait_task(task, hook_timeout):
                _leave_hooks(pool, task)
                self.logger.warning(
                    "alert after-dispatch hooks still running after %gs: they finish in the background",
                    hook_timeout,
                )
            elif task.value:
                pending = task.value
        for plugin_name, awaitable in pending:
            token = IN_HOOKS.set(True)
            try:
                await asyncio.wait_for(_await(awaitable), max(until - time.perf_counter(), 0.05))
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - hooks never break delivery
                self._hook_failed(plugin_name, exc)
            finally:
                IN_HOOKS.reset(token)

    def _hooks_admitted(self, pool: WorkerPool) -> bool:
        """Whether the hooks of one more dispatch may queue: hung hooks must not grow memory for ever."""
        if pool.queued < MAX_QUEUED_HOOKS:
            return True
        with self._lock:
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
        token = IN_HOOKS.set(True)
        try:
            if audit is not None:
                self._record(audit, alert, result)
            if host is not None:
                from .pool import loop_thread  # an awaitable from a hook only: importing _observe loads no pool

                for plugin_name, awaitable in host.after_dispatch(alert, result):
                    try:
                        loop_thread().run(_await(awaitable), max(until - time.perf_counter(), 0.05))
                    except (Exception, SystemExit) as exc:  # noqa: BLE001 - hooks never break delivery
                        self._hook_failed(plugin_name, exc)
        finally:
            IN_HOOKS.reset(token)

    def _call_hooks(self, audit: Any, host: Any, alert: Alert, result: DeliveryResult) -> list[tuple[str, Any]]:
        token = IN_HOOKS.set(True)
        try:
            if audit is not None:
                self._record(audit, alert, result)
            return list(host.after_dispatch(alert, result)) if host is not None else []
        finally:
            IN_HOOKS.reset(token)

    def _record(self, audit: Any, alert: Alert, result: DeliveryResult) -> None:
        try:
            audit.alert_infra_after_dispatch(alert, result)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the audit trail never breaks delivery
            self.logger.warning("alert audit trail failed to record: %s", type(exc).__name__)

    def _hook_failed(self, plugin_name: str, exc: BaseException) -> None:
        self.logger.warning("alert_infra_after_dispatch of plugin %s failed: %s", plugin_name, type(exc).__name__)


def _leave_hooks(pool: WorkerPool, task: Task) -> None:
    """Stop waiting for a dispatch's hooks. Queued hook work still runs (an audit record is not
    dropped); a running one is written off, so the next dispatches' hooks get a thread, until
    :data:`MAX_OVERDUE_HOOKS` hooks hang at once: then they wait their turn (and, past
    :data:`MAX_QUEUED_HOOKS`, are dropped and counted) rather than take ever more threads."""
    if pool.overdue < MAX_OVERDUE_HOOKS:
        pool.write_off(task, cancel=False)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _make_hook_pool() -> WorkerPool:
    from .pool import WorkerPool  # the first hook with a deadline only: importing _observe loads no pool

    return WorkerPool(8, name="alert-infra-hooks")


HOOK_POOL = ProcessSingleton(_make_hook_pool)


def hook_pool() -> WorkerPool:
    """The process's pool for audit writes and hooks that may block (shared by every dispatcher)."""
    pool: WorkerPool = HOOK_POOL.get()
    return pool
