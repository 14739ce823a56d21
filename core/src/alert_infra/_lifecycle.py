"""Fork safety and release without ``close()``, for everything that holds a thread, lock or socket.

After ``os.fork()`` (gunicorn with ``--preload``, Celery's prefork pool,
``multiprocessing`` with the fork start method) the child has a copy of every object
but only the thread that forked: the parent's worker threads are gone, a lock another
thread held at the moment of the fork stays locked for ever, and a socket or SQLite
connection is shared with the parent. Each object that owns such things registers a
reset for the child here::

    on_fork_in_child(self, MyPool._after_fork)   # called as MyPool._after_fork(self) in the child

The registry holds objects *weakly*: registering never keeps an object alive, and a
collected object is simply skipped. One ``os.register_at_fork`` hook serves the whole
process (registered on first use), so creating many objects never grows the
interpreter's own fork-hook list. Resets run in registration order; one that raises is
ignored (the child must start whatever happens: a reset is best effort by nature).

Resets must be quick and must not take locks that another thread of the parent could
have held at the fork: they *replace* locks, queues and connections, they never acquire
or close the inherited ones (closing a socket or a SQLite handle in the child would
also affect the parent's copy of the connection's state).
"""

from __future__ import annotations

import os
import time
from _thread import allocate_lock
from _weakref import ref as _weak_ref  # the built-in behind weakref.ref: nothing more to import

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "FORK_QUIESCE_TIMEOUT",
    "ForkSafeLock",
    "ProcessSingleton",
    "fork_generation",
    "forked_while_busy",
    "on_fork_in_child",
    "quiesce_at_fork",
]

#: The most a fork waits, in all, for the SQLite transactions open in its process to end (seconds).
FORK_QUIESCE_TIMEOUT = 1.0

_lock = allocate_lock()
_entries: dict[int, tuple[Any, Callable[[Any], None]]] = {}  # id -> (weakref, reset)
_next = 0
_hooked = False
_generation = 0


_quiet: dict[int, tuple[Any, str]] = {}  # id -> (weakref, lock attribute)
_held: list[Any] = []  # locks the fork's "before" hook holds
_busy: set[int] = set()  # ids of objects whose lock could not be had before the fork
_quiet_hooked = False


def fork_generation() -> int:
    """How many forks this process descends from (0 in the original process): a cheap
    "am I still in the process that made this?" check for hot paths."""
    return _generation


def on_fork_in_child(obj: object, reset: Callable[[Any], None]) -> None:
    """Call ``reset(obj)`` in every child forked from this process while ``obj`` is alive."""
    global _next, _hooked
    with _lock:
        key = _next
        _next += 1

        def forget(_ref: object, key: int = key) -> None:
            _entries.pop(key, None)

        _entries[key] = (_weak_ref(obj, forget), reset)
        if not _hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _hooked = True


def _after_fork_in_child() -> None:
    global _lock, _generation
    _lock = allocate_lock()  # the parent may have held it while forking
    _generation += 1
    _held.clear()  # the child's copies of the held locks are replaced by the resets, never released
    try:
        for ref, reset in list(_entries.values()):
            obj = ref()
            if obj is None:
                continue
            try:
                reset(obj)
            except Exception:  # noqa: BLE001, S110 - the child must start; a failed reset is best effort
                pass
    finally:
        _busy.clear()


def quiesce_at_fork(obj: object, attr: str = "_lock") -> None:
    """Hold ``obj.<attr>`` (a lock taken around each of ``obj``'s SQLite transactions) across every
    ``fork()`` of this process while ``obj`` is alive, waiting at most :data:`FORK_QUIESCE_TIMEOUT`
    in all for the transactions under way.

    Why: SQLite keeps its file locks per process, in memory. A child forked while the parent is
    inside a write transaction inherits that memory: every new connection it opens to the file
    sees "this process already holds the lock", waits, and fails for the child's whole life
    (gunicorn ``--preload``, Celery prefork). Holding the lock across the fork means no
    transaction of ``obj`` is open when the process is copied. When the wait runs out (a
    transaction stuck on another process's lock), the child is told through
    :func:`forked_while_busy` and must not use that file.
    """
    global _quiet_hooked
    with _lock:
        key = id(obj)

        def forget(_ref: object, key: int = key) -> None:
            _quiet.pop(key, None)

        _quiet[key] = (_weak_ref(obj, forget), attr)
        if not _quiet_hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent)
            _quiet_hooked = True


def forked_while_busy(obj: object) -> bool:
    """In a fork reset: whether ``obj``'s lock (see :func:`quiesce_at_fork`) was still taken by a
    transaction when the process was copied."""
    return id(obj) in _busy


def _before_fork() -> None:
    _busy.clear()
    deadline = time.monotonic() + FORK_QUIESCE_TIMEOUT
    for key, (ref, attr) in list(_quiet.items()):
        obj = ref()
        lock = getattr(obj, attr, None) if obj is not None else None
        if lock is None:
            continue
        try:
            if lock.acquire(True, max(0.0, deadline - time.monotonic())):
                _held.append(lock)
            else:
                _busy.add(key)
        except Exception:  # noqa: BLE001 - never stop a fork
            _busy.add(key)


def _after_fork_in_parent() -> None:
    while _held:
        try:
            _held.pop().release()
        except Exception:  # noqa: BLE001, S110 - released already
            pass
    _busy.clear()


class ProcessSingleton:
    """One object per process, made by ``factory()`` on first :meth:`get` (the plugin host, the
    hook pool, the event-loop thread, the Django exception-alert queue).

    The lock that makes creation happen once is replaced in a forked child: it is held while
    ``factory`` runs (imports included), and a child forked while another thread of the parent
    held it would otherwise hang on its first use. The object itself is kept across the fork;
    what it owns (threads, sockets) is its own fork reset's business.
    """

    __slots__ = ("__weakref__", "_factory", "_lock", "_value")

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._value: Any = None
        self._lock = allocate_lock()
        on_fork_in_child(self, ProcessSingleton._after_fork)

    def _after_fork(self) -> None:
        self._lock = allocate_lock()

    def get(self, *, stale: Callable[[Any], bool] | None = None) -> Any:
        """The object, made on first use (or remade when ``stale(obj)`` says it is unusable)."""
        value = self._value
        if value is None or (stale is not None and stale(value)):
            with self._lock:
                value = self._value
                if value is None or (stale is not None and stale(value)):
                    value = self._value = self._factory()
        return value

    def peek(self) -> Any:
        """The object if it was made, else ``None`` (never makes it)."""
        return self._value

    def set(self, value: Any) -> None:
        """Install ``value`` in its place (``None``: forget it; the next :meth:`get` makes one)."""
        with self._lock:
            self._value = value


class ForkSafeLock:
    """A module-level lock (``with LOCK:``) that a forked child gets fresh: one another thread of
    the parent held at the fork would otherwise stay locked in the child for ever."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = allocate_lock()
        on_fork_in_child(self, ForkSafeLock._after_fork)

    def _after_fork(self) -> None:
        self._lock = allocate_lock()

    def __enter__(self) -> bool:
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
