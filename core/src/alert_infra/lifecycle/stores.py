"""Where lifecycle records live: in memory, in a SQLite file, or in Redis.

Silences, groups, inhibition sources and the notification log each keep small JSON records
(a mapping per key) in a :class:`RecordStore` of their own ``kind``:

* :class:`MemoryStore`: this process only.
* :class:`SQLiteStore`: a table of its own (``lifecycle_<kind>``) in the given SQLite file, in WAL
  mode; every wait for another process's lock is bounded (``timeout``, default 0.5 s). A forked
  child opens its own connection on first use and never touches the parent's.
* :class:`RedisStore`: keys of its own (``<prefix>:<kind>:<key>`` and an index set
  ``<prefix>:<kind>:~index``) in a given redis-py client or a URL (connect and read timeouts
  bounded, default 0.5 s; the URL is treated as a secret). A client built from a URL is rebuilt in
  a forked child.

:func:`open_store` picks one from a setting. Records may carry a time to live; an expired record
is never returned. Store operations raise on failure (a locked file beyond the bound, Redis
down): the gates built on them catch that and fail open (the alert is delivered).
"""

from __future__ import annotations

import json
import os
import threading
import time

from .._lifecycle import on_fork_in_child, quiesce_at_fork
from ..exceptions import AlertConfigurationError
from ..security import guarded_repr, register_secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = [
    "UNCHANGED",
    "GuardedStore",
    "MemoryStore",
    "RecordStore",
    "RedisStore",
    "SQLiteStore",
    "StoreUnavailable",
    "open_store",
]

_KIND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_")
#: The largest record any store accepts (bytes of JSON): a group of thousands of alerts fits.
MAX_RECORD_BYTES = 8 * 1024 * 1024
#: Bounds of a store's wait for a lock or a socket (seconds).
MIN_TIMEOUT, MAX_TIMEOUT = 0.05, 10.0
#: How many times :meth:`RedisStore.update` starts again when another client changed the record
#: between its read and its write (optimistic locking); then it raises.
MAX_UPDATE_TRIES = 16


class _Unchanged:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED"


#: What a :meth:`RecordStore.update` function returns to leave the record as it is (no write).
UNCHANGED: Any = _Unchanged()


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not kind or not set(kind) <= _KIND_CHARS or len(kind) > 40:
        raise AlertConfigurationError("a lifecycle store's kind is lowercase letters and '_'")
    return kind


def _check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
        raise AlertConfigurationError(f"a lifecycle store's timeout is {MIN_TIMEOUT} to {MAX_TIMEOUT} seconds")
    return float(timeout)


def _encode(value: dict[str, Any]) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
    if len(text) > MAX_RECORD_BYTES:
        raise ValueError(f"a lifecycle record is larger than {MAX_RECORD_BYTES} bytes")
    return text


class RecordStore:
    """The interface: JSON mappings by key, each with an optional time to live (seconds).

    ``clock`` (wall-clock seconds, default :func:`time.time`) decides expiry; tests inject one.
    """

    kind: str = ""
    name: str = "store"

    def __init__(self, kind: str, clock: Callable[[], float] | None = None) -> None:
        self.kind = _check_kind(kind)
        self.clock: Callable[[], float] = clock or time.time

    def get(self, key: str) -> dict[str, Any] | None:
        """The record under ``key``, or ``None`` (missing or expired)."""
        raise NotImplementedError

    def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` (replacing it), expiring after ``ttl`` seconds if given."""
        raise NotImplementedError

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        raise NotImplementedError

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """Every live record, sorted by key."""
        raise NotImplementedError

    def update(self, key: str, change: Callable[[dict[str, Any] | None], Any], ttl: float | None = None) -> Any:
        """Read, change and write the record under ``key`` as one step no other writer of the same
        store (another thread, another process) can interleave with: ``change(current)`` gets the
        record (or ``None``) and returns the new one, ``None`` to delete it, or :data:`UNCHANGED`;
        its answer is returned. ``change`` may be called more than once (Redis starts again when
        another client wrote the record meanwhile), so it must not act beyond computing its answer.

        This base version is a plain read then write (not atomic): every store here overrides it.
        """
        value = change(self.get(key))
        if value is UNCHANGED:
            return value
        if value is None:
            self.delete(key)
        else:
            self.put(key, value, ttl)
        return value

    def clear(self) -> None:
        """Remove every record of this kind."""
        for key, _ in self.items():
            self.delete(key)

    def close(self) -> None:
        """Release connections (the store may still be used: it reconnects)."""

    @guarded_repr
    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r})"


class MemoryStore(RecordStore):
    """Records in this process's memory (copies: a caller never shares a mutable record).

    ``max_records`` bounds how many are kept (the least recently written go first). ``copy=False``
    keeps each record as given, without a JSON round trip, for a caller that never mutates a
    record it put or got (the dispatcher's notification log: its hot path)."""

    name = "memory"

    def __init__(
        self,
        kind: str = "records",
        clock: Callable[[], float] | None = None,
        *,
        max_records: int | None = None,
        copy: bool = True,
    ) -> None:
        super().__init__(kind, clock)
        self._copy = copy
        #: The most records kept (``None``: no bound); beyond it the least recently written go first.
        self.max_records = max_records
        self._data: dict[str, tuple[float | None, Any]] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _locked(self) -> threading.Lock:
        if os.getpid() != self._pid:  # a forked child: a lock of its own (the parent's may be held)
            self._lock = threading.Lock()
            self._pid = os.getpid()
        return self._lock

    def get(self, key: str) -> dict[str, Any] | None:
        with self._locked():
            found = self._data.get(key)
            if found is None:
                return None
            expires, text = found
            if expires is not None and expires <= self.clock():
                del self._data[key]
                return None
        if not self._copy:
            kept: dict[str, Any] = text
            return kept
        value: dict[str, Any] = json.loads(text)
        return value

    def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        text: Any = _encode(value) if self._copy else value
        expires = None if ttl is None else self.clock() + ttl
        with self._locked():
            data = self._data
            data.pop(key, None)  # re-inserted last: the dict's order is the order of writes
            data[key] = (expires, text)
            if self.max_records is not None and len(data) > self.max_records:
                del data[next(iter(data))]

    def delete(self, key: str) -> bool:
        with self._locked():
            return self._data.pop(key, None) is not None

    def update(self, key: str, change: Callable[[dict[str, Any] | None], Any], ttl: float | None = None) -> Any:
        with self._locked():  # one lock for the read and the write: no other thread in between
            data = self._data
            found = data.get(key)
            current: Any = None
            if found is not None and (found[0] is None or found[0] > self.clock()):
                current = json.loads(found[1]) if self._copy else found[1]
            value = change(current)
            if value is UNCHANGED:
                return value
            data.pop(key, None)
            if value is not None:
                data[key] = (None if ttl is None else self.clock() + ttl, _encode(value) if self._copy else value)
                if self.max_records is not None and len(data) > self.max_records:
                    del data[next(iter(data))]
            return value

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        now = self.clock()
        with self._locked():
            gone = [key for key, (expires, _) in self._data.items() if expires is not None and expires <= now]
            for key in gone:
                del self._data[key]
            live = sorted(self._data.items())
        return [(key, json.loads(text) if self._copy else text) for key, (_, text) in live]

    def clear(self) -> None:
        with self._locked():
            self._data.clear()


class SQLiteStore(RecordStore):
    """Records in a table of their own (``lifecycle_<kind>``) of a SQLite file (WAL, bounded waits).

    Args:
        path: the file (its folder must exist), or
            ``sqlite:///PATH``.
        kind: which records (the table's suffix).
        timeout: the longest wait for another process's lock, seconds (default 0.5).
    """

    name = "sqlite"
    _SWEEP_EVERY = 64

    def __init__(
        self, path: str, kind: str = "records", *, timeout: float = 0.5, clock: Callable[[], float] | None = None
    ) -> None:
        super().__init__(kind, clock)
        if not isinstance(path, str) or not path:
            raise AlertConfigurationError("a SQLite lifecycle store needs a file path")
        if path.startswith("sqlite:///"):
            path = path[len("sqlite:///") :]
            path = os.path.expanduser(path) if path.startswith("~") else "/" + path.lstrip("/")
        self.path = path
        self.timeout = _check_timeout(timeout)
        self._table = f"lifecycle_{self.kind}"
        self._conn: Any = None
        self._pid = -1
        self._lock = threading.Lock()
        self._writes = 0

        on_fork_in_child(self, SQLiteStore._after_fork)
        # Every call holds the lock for its statement or transaction (update()'s read and write):
        # held across a fork, no transaction of ours is open when the process is copied.
        quiesce_at_fork(self)

    def _after_fork(self) -> None:
        # In a forked child: another thread of the parent may have held the lock mid-statement. A
        # new lock; the parent's connection set aside (never used, never closed: closing it would
        # drop this process's POSIX locks on the file), a new one made on first use.
        self._lock = threading.Lock()
        if self._conn is not None:
            _INHERITED.append(self._conn)
            self._conn = None
        self._pid = -1

    def _connection(self) -> Any:
        if self._pid != os.getpid():
            # First use, or a forked child without the fork reset: a connection of its own. The
            # parent's is left alone (never closed here: closing it would disturb the parent's copy
            # of its state).
            import sqlite3  # a SQLite store only: sqlite3 stays out of lifecycle's import

            if self._conn is not None:
                _INHERITED.append(self._conn)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {self._table}_expires ON {self._table} (expires)")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = (
                self._connection()
                .execute(
                    f"SELECT value FROM {self._table} WHERE key = ? AND (expires IS NULL OR expires > ?)",  # noqa: S608
                    (key, self.clock()),
                )
                .fetchone()
            )
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        text = _encode(value)
        now = self.clock()
        with self._lock:
            conn = self._connection()
            conn.execute(
                f"INSERT OR REPLACE INTO {self._table} (key, value, expires) VALUES (?, ?, ?)",  # noqa: S608
                (key, text, None if ttl is None else now + ttl),
            )
            self._writes += 1
            if self._writes % self._SWEEP_EVERY == 0:
                conn.execute(f"DELETE FROM {self._table} WHERE expires IS NOT NULL AND expires <= ?", (now,))  # noqa: S608

    def delete(self, key: str) -> bool:
        with self._lock:
            cursor = self._connection().execute(f"DELETE FROM {self._table} WHERE key = ?", (key,))  # noqa: S608
            return bool(cursor.rowcount)

    def update(self, key: str, change: Callable[[dict[str, Any] | None], Any], ttl: float | None = None) -> Any:
        # BEGIN IMMEDIATE takes the file's write lock before the read (waiting at most the store's
        # timeout for another process's): no other process writes between this read and write.
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = self.clock()
                row = conn.execute(
                    f"SELECT value FROM {self._table} WHERE key = ? AND (expires IS NULL OR expires > ?)",  # noqa: S608
                    (key, now),
                ).fetchone()
                value = change(None if row is None else json.loads(row[0]))
                if value is None:
                    conn.execute(f"DELETE FROM {self._table} WHERE key = ?", (key,))  # noqa: S608
                elif value is not UNCHANGED:
                    conn.execute(
                        f"INSERT OR REPLACE INTO {self._table} (key, value, expires) VALUES (?, ?, ?)",  # noqa: S608
                        (key, _encode(value), None if ttl is None else now + ttl),
                    )
                conn.execute("COMMIT")
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001, S110 - no transaction left to roll back
                    pass
                raise
        return value

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    f"SELECT key, value FROM {self._table} WHERE expires IS NULL OR expires > ? ORDER BY key",  # noqa: S608
                    (self.clock(),),
                )
                .fetchall()
            )
        return [(key, json.loads(text)) for key, text in rows]

    def clear(self) -> None:
        with self._lock:
            self._connection().execute(f"DELETE FROM {self._table}")  # noqa: S608

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn, self._pid = None, -1

    @guarded_repr
    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, kind={self.kind!r})"


#: SQLite connections a forked child inherited: kept referenced, never used nor closed (garbage
#: collection would close them, dropping the child's own POSIX locks on the file).
_INHERITED: list[Any] = []


class RedisStore(RecordStore):
    """Records under ``<prefix>:<kind>:`` in Redis, shared by every process that uses them.

    Args:
        url: ``redis://…`` / ``rediss://…`` / ``unix://…`` (a secret: never logged or shown), or
        client: a redis-py client to use as it is (its own timeouts apply).
        prefix: the namespace (default ``alert-infra:lifecycle``).
        timeout: connect and read timeout for a client built from ``url`` (default 0.5 s).
    """

    name = "redis"

    def __init__(
        self,
        url: str | None = None,
        kind: str = "records",
        *,
        client: Any = None,
        prefix: str = "alert-infra:lifecycle",
        timeout: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(kind, clock)
        self.timeout = _check_timeout(timeout)
        if client is None:
            if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
                raise AlertConfigurationError("a Redis lifecycle store needs a redis://, rediss:// or unix:// URL")
            register_secret(url, owner=self)
        self._url = url
        self._given = client
        self._client: Any = client
        self._pid = os.getpid() if client is not None else -1
        self._prefix = f"{prefix}:{self.kind}:"
        self._index = f"{prefix}:{self.kind}:~index"

    def _redis(self) -> Any:
        if self._given is not None:
            return self._given
        if self._pid != os.getpid():  # first use or a forked child: a client (and pool) of its own
            try:
                import redis  # a Redis store only: redis is the [redis] extra
            except ImportError:
                raise AlertConfigurationError(
                    "a Redis lifecycle store needs the redis package: pip install 'alert-infra[redis]'"
                ) from None
            try:
                self._client = redis.Redis.from_url(
                    str(self._url), socket_connect_timeout=self.timeout, socket_timeout=self.timeout
                )
            except ValueError:
                raise AlertConfigurationError("not a valid Redis URL") from None  # its message quotes the URL
            self._pid = os.getpid()
        return self._client

    def get(self, key: str) -> dict[str, Any] | None:
        return self._unwrap(self._redis().get(self._prefix + key))

    def _unwrap(self, raw: Any) -> dict[str, Any] | None:
        # Each record is {"e": expires (this store's clock) or null, "v": value}: Redis's own TTL
        # removes it in real time, the clock decides in between (an injected one in tests).
        if raw is None:
            return None
        wrapped = json.loads(raw)
        if wrapped["e"] is not None and wrapped["e"] <= self.clock():
            return None
        value: dict[str, Any] = wrapped["v"]
        return value

    def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        text = _encode({"e": None if ttl is None else self.clock() + ttl, "v": value})
        pipe = self._redis().pipeline(transaction=True)
        if ttl is None:
            pipe.set(self._prefix + key, text)
        else:
            pipe.set(self._prefix + key, text, px=max(1, int(ttl * 1000)))
        pipe.sadd(self._index, key)
        pipe.execute()

    def delete(self, key: str) -> bool:
        pipe = self._redis().pipeline(transaction=True)
        pipe.delete(self._prefix + key)
        pipe.srem(self._index, key)
        return bool(pipe.execute()[0])

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        client = self._redis()
        keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in client.smembers(self._index))
        if not keys:
            return []
        found: list[tuple[str, dict[str, Any]]] = []
        gone: list[str] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for key, raw in zip(chunk, client.mget([self._prefix + k for k in chunk])):
                if raw is None:
                    gone.append(key)
                    continue
                value = self._unwrap(raw)
                if value is not None:
                    found.append((key, value))
        if gone:
            client.srem(self._index, *gone)
        return found

    def update(self, key: str, change: Callable[[dict[str, Any] | None], Any], ttl: float | None = None) -> Any:
        # Optimistic: WATCH the key, read, write in MULTI/EXEC; another client's write in between
        # makes EXEC fail and the whole step starts again (at most MAX_UPDATE_TRIES times).
        from redis.exceptions import WatchError  # a Redis store only (redis is loaded by then)

        name = self._prefix + key
        with self._redis().pipeline(transaction=True) as pipe:
            for _ in range(MAX_UPDATE_TRIES):
                try:
                    pipe.watch(name)
                    value = change(self._unwrap(pipe.get(name)))
                    if value is UNCHANGED:
                        pipe.unwatch()
                        return value
                    pipe.multi()
                    if value is None:
                        pipe.delete(name)
                        pipe.srem(self._index, key)
                    else:
                        text = _encode({"e": None if ttl is None else self.clock() + ttl, "v": value})
                        if ttl is None:
                            pipe.set(name, text)
                        else:
                            pipe.set(name, text, px=max(1, int(ttl * 1000)))
                        pipe.sadd(self._index, key)
                    pipe.execute()
                    return value
                except WatchError:
                    continue
        raise ConnectionError(f"a lifecycle record changed under {MAX_UPDATE_TRIES} tries in a row")

    def clear(self) -> None:
        client = self._redis()
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in client.smembers(self._index)]
        pipe = client.pipeline(transaction=True)
        for key in keys:
            pipe.delete(self._prefix + key)
        pipe.delete(self._index)
        pipe.execute()

    def close(self) -> None:
        if self._given is None and self._client is not None and self._pid == os.getpid():
            pool = getattr(self._client, "connection_pool", None)
            if pool is not None:
                pool.disconnect()
            self._client, self._pid = None, -1

    @guarded_repr
    def __repr__(self) -> str:  # never the URL (it may hold a password)
        return f"RedisStore(kind={self.kind!r})"


class StoreUnavailable(ConnectionError):
    """A :class:`GuardedStore` whose store failed recently: not asked again until its retry time."""


class GuardedStore(RecordStore):
    """A circuit breaker around a store on the hot path of delivery: after the store fails (a
    silent Redis, a locked file), every call fails at once with :class:`StoreUnavailable` for
    ``retry_interval`` seconds instead of waiting for the store's timeout again, so a store that
    is down costs one timeout per interval, not one per alert. The gates fail open on it."""

    def __init__(
        self, store: RecordStore, retry_interval: float = 5.0, *, down: Callable[[], bool] | None = None
    ) -> None:
        super().__init__(store.kind, store.clock)
        self.store = store
        self._down = down  # another view of the same server (the dispatcher's Redis state): down too
        self.name = store.name
        self.retry_interval = float(retry_interval)
        self._down_until = 0.0

    def _call(self, method: str, *args: Any) -> Any:
        if (self._down_until and time.monotonic() < self._down_until) or (self._down is not None and self._down()):
            raise StoreUnavailable(f"the lifecycle store failed less than {self.retry_interval:g}s ago")
        try:
            result = getattr(self.store, method)(*args)
        except Exception:
            self._down_until = time.monotonic() + self.retry_interval
            raise
        self._down_until = 0.0
        return result

    def get(self, key: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._call("get", key)
        return found

    def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        self._call("put", key, value, ttl)

    def delete(self, key: str) -> bool:
        return bool(self._call("delete", key))

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        found: list[tuple[str, dict[str, Any]]] = self._call("items")
        return found

    def update(self, key: str, change: Callable[[dict[str, Any] | None], Any], ttl: float | None = None) -> Any:
        return self._call("update", key, change, ttl)

    def clear(self) -> None:
        self._call("clear")

    def close(self) -> None:
        self.store.close()

    @guarded_repr
    def __repr__(self) -> str:
        return f"GuardedStore({self.store!r})"


def open_store(spec: Any = None, kind: str = "records", **options: Any) -> RecordStore:
    """A store from a setting: ``None``/``"memory"``, ``"sqlite:///PATH"``, a Redis URL, a redis-py
    client, or a :class:`RecordStore` (returned as it is). ``options`` go to the store's constructor
    (``clock``, ``timeout``, ``prefix``)."""
    if isinstance(spec, RecordStore):
        return spec
    if spec is None or spec == "memory":
        return MemoryStore(kind, clock=options.get("clock"))
    if isinstance(spec, str) and spec.startswith("sqlite:///"):
        return SQLiteStore(spec, kind, **options)
    if isinstance(spec, str) and spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(spec, kind, **options)
    if not isinstance(spec, str) and hasattr(spec, "pipeline") and hasattr(spec, "mget"):
        return RedisStore(None, kind, client=spec, **options)
    raise AlertConfigurationError(
        "a lifecycle store is 'memory', a sqlite:/// URL, a redis:// URL or a redis client"
        + (f", got {type(spec).__name__}" if not isinstance(spec, str) else "")
    )
