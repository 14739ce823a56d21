"""Where throttle budgets and de-duplication windows live: this process, or Redis.

Two operations are all the delivery policies need, and each is atomic:

* :meth:`~StateBackend.acquire` takes one token from *every* bucket it is given,
  or from none of them (a channel's budget and the alert's own budget are
  checked together, so a refused alert never spends the channel's budget);
* :meth:`~StateBackend.claim` marks a de-duplication key for a window unless it
  is already marked (``SET NX`` semantics), and :meth:`~StateBackend.release`
  removes a claim that did not end in a delivery, so a failed or throttled alert
  never suppresses its next occurrence.

Queued delivery adds idempotency records: :meth:`~StateBackend.mark_delivered` (written when
a channel got an alert, with a time to live) and :meth:`~StateBackend.is_delivered`, so a
redelivered task skips the channels already served. Every backend has them; a Redis or SQLite
state shares them between worker processes (an unreachable store fails open to memory: at
worst a channel gets the alert twice, never zero times).

:class:`MemoryState` (the default) shares state between the threads of one
process. :class:`RedisState` shares it between every process that names the same
Redis (``state = "redis://…"``): an alert's claim and token buckets are checked
in one Lua script (one round trip, atomic) on the server's clock. When Redis cannot be reached the
backend *fails open*: it logs once, keeps the policies working on this process's
memory, and goes back to Redis when it answers again, so an outage of the state
store never drops an alert.

:class:`SQLiteState` (``state = "sqlite:///path"``) shares it between the processes of
one machine that name the same file, with no server: separate ``alert-infra send`` runs
(cron) then share one de-duplication window and one throttle budget. Each operation is
one ``BEGIN IMMEDIATE`` transaction; a file locked for longer than
:data:`SQLITE_BUSY_TIMEOUT` (or unreadable) fails open to this process's memory exactly
as an unreachable Redis does.

Layout: :mod:`._base` (the interface: :class:`StateBackend`, :class:`Bucket`),
:mod:`._memory`, :mod:`._sqlite` and :mod:`._redis` (the three backends), and here :data:`SCHEMES`,
the one table from a ``state`` setting to its backend, which every caller reads through
:func:`backend_for` and :func:`open_state`.
"""

from __future__ import annotations

from ..exceptions import AlertConfigurationError
from ._base import REDIS_SCHEMES, SQLITE_SCHEME, Bucket, StateBackend, sqlite_path
from ._memory import MAX_ENTRIES, SWEEP_STEP, MemoryState
from ._redis import RedisState
from ._sqlite import (
    SQLITE_BUSY_TIMEOUT,
    SQLITE_CAP_EVERY,
    SQLITE_RETRY_INTERVAL,
    SQLiteState,
    boot_id,
    inside_transaction,
    machine_clock,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_ENTRIES",
    "REDIS_SCHEMES",
    "SCHEMES",
    "SQLITE_BUSY_TIMEOUT",
    "SQLITE_CAP_EVERY",
    "SQLITE_RETRY_INTERVAL",
    "SQLITE_SCHEME",
    "SWEEP_STEP",
    "Bucket",
    "MemoryState",
    "RedisState",
    "SQLiteState",
    "StateBackend",
    "backend_for",
    "boot_id",
    "inside_transaction",
    "machine_clock",
    "open_state",
    "sqlite_path",
]

#: The one table from a ``state`` URL's scheme (the text before ``://``) to the backend that serves
#: it. ``None`` and ``"memory"`` name :class:`MemoryState`; a scheme not here names no backend.
SCHEMES: dict[str, type[StateBackend]] = {
    "sqlite": SQLiteState,  # sqlite:///abs/path or sqlite:///~/path: the processes of one machine
    "redis": RedisState,
    "rediss": RedisState,
    "unix": RedisState,  # unix:///path/to/redis.sock
}


def backend_for(spec: object) -> type[StateBackend] | None:
    """The backend class a ``state`` setting names, or ``None`` when it names none (never raises).

    ``None`` and ``"memory"`` are :class:`MemoryState`; a backend instance is its own class; a URL
    is looked up by its scheme in :data:`SCHEMES`. Whether the rest of the URL is usable is the
    backend's to say (:func:`open_state`, :func:`sqlite_path`)."""
    if spec is None or spec == "memory":
        return MemoryState
    if isinstance(spec, StateBackend):
        return type(spec)
    if not isinstance(spec, str):
        return None
    scheme, sep, _ = spec.partition("://")
    return SCHEMES.get(scheme) if sep else None


def open_state(spec: Any = None, *, prefix: str | None = None, **kwargs: Any) -> StateBackend:
    """A state backend from a setting: ``None``/``"memory"``, ``sqlite:///path``, a Redis URL, or a backend.

    ``prefix`` names the keys of a shared Redis (ignored by the others: a SQLite file or this
    process's memory is already one application's); other keywords go to the backend's class.

    Raises:
        AlertConfigurationError: a setting that names no backend, or a URL its backend refuses.
    """
    backend = backend_for(spec)
    if backend is None:
        raise AlertConfigurationError(
            f"state: expected 'memory', a sqlite:/// or a redis:// URL, got {type(spec).__name__}"
            if not isinstance(spec, str)
            else "state: expected 'memory', a sqlite:/// file or a redis://, rediss:// or unix:// URL"
        )
    if isinstance(spec, StateBackend):
        return spec
    if backend is MemoryState:
        return MemoryState(**kwargs)
    if backend is SQLiteState:
        return SQLiteState(sqlite_path(spec), **kwargs)
    if prefix is not None:
        kwargs["prefix"] = prefix
    return backend(spec, **kwargs)  # type: ignore[call-arg]
