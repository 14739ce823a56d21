"""State in a SQLite file, shared by the processes of one machine that name the same file."""

from __future__ import annotations

import os
import time
from _thread import allocate_lock

from .._checks import MAX_WINDOW, check_count, check_seconds
from .._lifecycle import forked_while_busy, on_fork_in_child, quiesce_at_fork
from ..exceptions import AlertConfigurationError
from ._base import Bucket, StateBackend, refill
from ._memory import MAX_ENTRIES, SWEEP_STEP, MemoryState

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Sequence
    from typing import Any


#: How long one :class:`SQLiteState` operation waits for another process's transaction on the
#: same file (seconds, default 0.5; ``SQLiteState(path, timeout=...)`` changes it). Beyond it the
#: operation fails open: it runs on this process's memory, as an unreachable Redis does.
SQLITE_BUSY_TIMEOUT = 0.5
#: After a failure (locked beyond the bound, unreadable file), how long a :class:`SQLiteState`
#: stays on memory before trying the file again (seconds, default 5; ``retry_interval=``).
SQLITE_RETRY_INTERVAL = 5.0
#: How often (in writes by one process) a :class:`SQLiteState` counts its rows against
#: ``max_entries``: the file holds at most ``max_entries`` claims and ``max_entries`` buckets,
#: plus at most this many per process writing between two counts.
SQLITE_CAP_EVERY = 64

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS claims_expires ON claims (expires)",
    "CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL,"
    " expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS buckets_expires ON buckets (expires)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def machine_clock() -> float:
    """Seconds on this machine's clock that no one sets: since boot, counting suspend where the
    system can (``CLOCK_BOOTTIME``), else :func:`time.monotonic`. Every process of the machine reads
    the same value, and a step of the wall clock (NTP, a user, a VM restored) in either direction
    does not move it: a de-duplication window or a throttle in a shared SQLite file means the same
    seconds whatever the wall clock does."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)


def boot_id() -> str:
    """What tells this boot of the machine from the others (Linux's ``boot_id``; elsewhere the wall
    time of the boot to the minute): :func:`machine_clock` restarts at each boot, so a state file
    written before a reboot is cleared (its windows end; fail open) rather than misread."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read(64).strip()
    except OSError:
        return f"booted:{int((time.time() - machine_clock()) // 60)}"


def inside_transaction(connection: Any) -> bool:
    """Whether ``connection`` (a ``sqlite3`` connection, maybe inherited through a fork) was inside a
    transaction: a read of the connection's memory, no call into the file."""
    if connection is None:
        return False
    try:
        return bool(connection.in_transaction)
    except Exception:  # noqa: BLE001 - closed or broken: assume the worst
        return True


def _start_boot(connection: Any) -> None:
    """The first transaction of a connection: a file last written by another boot of this machine
    has times on a clock that restarted, so its claims and buckets are dropped."""
    ours = boot_id()
    row = connection.execute("SELECT value FROM meta WHERE key = 'boot'").fetchone()
    if row is None or row[0] != ours:
        connection.execute("DELETE FROM claims")
        connection.execute("DELETE FROM buckets")
        connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot', ?)", (ours,))


#: Connections inherited by forked children: never closed there (closing a SQLite handle in the
#: child would disturb the parent's), only replaced; at most one per backend per fork.
_INHERITED: list[Any] = []


class SQLiteState(StateBackend):
    """State in a SQLite file, shared by every process of this machine that names the same file.

    The same rules as :class:`MemoryState` (a duplicate spends no token, a throttled alert holds
    no claim, a claim can only be released by its token), each operation one ``BEGIN IMMEDIATE``
    transaction, so that processes never interleave inside one. Times are seconds on the machine's
    clock (``clock``, default :func:`machine_clock`, injectable by tests): every process of the
    machine reads it alike, and a step of the wall clock in either direction neither lengthens nor
    ends a window; a file written before a reboot is cleared on first use (see :func:`boot_id`).

    Args:
        path: the file (created with its tables when missing; its folder must exist).
        clock: the time source, in seconds.
        timeout: how long an operation waits for another process's transaction
            (default :data:`SQLITE_BUSY_TIMEOUT`, at most :data:`~alert_infra._checks.MAX_TIMEOUT`).
        retry_interval: after a failure, how long the backend stays on memory before trying
            the file again (default :data:`SQLITE_RETRY_INTERVAL`).
        max_entries: the most claims, and separately the most buckets, the file keeps (default
            :data:`MAX_ENTRIES`; see :data:`SQLITE_CAP_EVERY`). Beyond it the oldest writes are
            evicted and counted in ``evicted``: an evicted entry fails open (more delivery).

    Bounded: expired claims and refilled buckets are swept (at most :data:`SWEEP_STEP` of each
    per operation), and the row count is capped. Fails open: a file locked beyond ``timeout``,
    unreadable or corrupt logs one warning, and the policies keep working on this process's
    memory until the file answers again; an alert is never dropped for the state's sake.

    Lifecycle: dropped without :meth:`close`, its connection is closed when it is collected
    (``weakref.finalize``). A forked child opens its own connection on the fork itself and
    leaves the inherited one alone (never used, never closed).
    """

    blocking = True
    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] | None = None,
        timeout: float = SQLITE_BUSY_TIMEOUT,
        retry_interval: float = SQLITE_RETRY_INTERVAL,
        max_entries: int = MAX_ENTRIES,
        logger_: logging.Logger | None = None,
    ) -> None:
        import weakref  # a SQLite backend only: weakref stays out of `import alert_infra.state`

        self._timeout = check_seconds(timeout, "state.timeout", error=AlertConfigurationError)
        self._retry_interval = check_seconds(
            retry_interval, "state.retry_interval", maximum=MAX_WINDOW, zero=True, error=AlertConfigurationError
        )
        self._max = check_count(max_entries, "max_entries", error=AlertConfigurationError)
        self.path = os.fspath(path)
        if not isinstance(self.path, str) or not self.path:
            raise AlertConfigurationError("state: a SQLite state needs a file path")
        self._machine = clock is None  # the machine clock: times in the file are per boot
        self._clock = clock or machine_clock
        self._fallback = MemoryState(self._clock, max_entries=self._max)
        self._logger = logger_
        self._lock = allocate_lock()
        self._down = False
        self._down_until = 0.0
        self._closed = False
        self._ready = False  # tables created
        self._short = False  # busy_timeout lowered for a caller that waited on the lock
        self._forked_busy = False  # forked inside a transaction: the file is unusable in this process
        self._forked_busy_said = False
        self._writes = 0
        self.evicted = 0
        self._box: list[Any] = [None]
        try:
            # A missing folder is created, as the audit trail creates its own (issue 19, item 7:
            # `check` said valid and `send` refused); `alert-infra check` tells the same apart by
            # asking whether it can be created (sqlite_problem), without creating it.
            folder = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(folder):
                os.makedirs(folder, exist_ok=True)
            self._box[0] = self._connect()
        except Exception as exc:  # noqa: BLE001 - an unopenable file: a configuration error, never a traceback
            raise AlertConfigurationError(f"state: cannot open the SQLite state file ({type(exc).__name__})") from None
        weakref.finalize(self, _close_box, self._box)
        on_fork_in_child(self, SQLiteState._after_fork)
        quiesce_at_fork(self)  # no transaction of ours is open when the process is copied

    def _connect(self) -> Any:
        import sqlite3  # a SQLite file only: sqlite3 stays out of `import alert_infra.state`

        connection = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
            connection.execute("PRAGMA synchronous=NORMAL")  # the state is not precious: losing it fails open
        except sqlite3.Error:
            pass  # locked now: the default journal works too
        return connection

    def _after_fork(self) -> None:
        """In a forked child: a new lock and a new connection; the inherited one is kept, unused.

        If the parent was still inside a transaction on this file when it forked (its lock could not
        be had within :data:`~alert_infra._lifecycle.FORK_QUIESCE_TIMEOUT`), SQLite's in-process lock
        bookkeeping in this child says the file is locked by this very process, for ever: the child
        then keeps its state in memory and says so once, instead of failing every operation."""
        self._lock = allocate_lock()
        inherited = self._box[0]
        _INHERITED.append(inherited)
        if forked_while_busy(self) and inside_transaction(inherited):
            self._box[0] = None
            self._closed = True
            self._forked_busy = True
            return
        try:
            self._box[0] = self._connect()
        except Exception:  # noqa: BLE001 - the child must start: it runs on memory
            self._box[0] = None
            self._closed = True

    @property
    def logger(self) -> logging.Logger:
        if self._logger is None:
            import logging  # the first log line only: logging stays out of `import alert_infra.state`

            self._logger = logging.getLogger("alert_infra")
        return self._logger

    def _run(self, operation: Callable[[Any, float], Any]) -> tuple[bool, Any]:
        """``(True, answer)`` from ``operation(connection, now)`` in one transaction, or ``(False, None)``.

        One total bound, ``timeout``, for the wait on this process's other callers *and* on another
        process's lock together: sixteen callers queued behind a file another process holds all
        give up within one ``timeout`` (the first marks the file down; the others see it when they
        get the lock), never sixteen timeouts one after another."""
        if self._closed or (self._down and time.monotonic() < self._down_until):
            if self._forked_busy:
                self._warn_forked_busy()
            return False, None
        started = time.monotonic()
        if not self._lock.acquire(True, self._timeout):
            return False, None  # the callers ahead of this one hold the file: memory for this one
        try:
            if self._closed or (self._down and time.monotonic() < self._down_until):
                return False, None
            connection = self._box[0]
            left = self._timeout - (time.monotonic() - started)
            if left <= 0:
                return False, None
            if left < self._timeout * 0.9:  # waited on the lock: SQLite may wait only what is left
                connection.execute(f"PRAGMA busy_timeout = {max(1, int(left * 1000))}")
                self._short = True
            elif self._short:
                connection.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
                self._short = False
            connection.execute("BEGIN IMMEDIATE")
            try:
                if not self._ready:
                    for statement in _SCHEMA:
                        connection.execute(statement)
                    if self._machine:
                        _start_boot(connection)
                    self._ready = True
                now = self._clock()
                self._sweep(connection, now)
                answer = operation(connection, now)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except Exception as exc:  # noqa: BLE001 - locked, unreadable, corrupt: fail open
            self._down_until = time.monotonic() + self._retry_interval
            first, self._down = not self._down, True
            if first:
                # The class name only: the message could name the file's contents.
                self.logger.warning(
                    "alert state backend sqlite is unavailable (%s): throttling and de-duplication use "
                    "this process's memory until it answers again; alerts are still delivered",
                    type(exc).__name__,
                )
            return False, None
        finally:
            self._lock.release()
        if self._down:
            self._down = False
            self.logger.warning("alert state backend sqlite answers again: shared state resumed")
        return True, answer

    def _warn_forked_busy(self) -> None:
        if not self._forked_busy_said:
            self._forked_busy_said = True
            self.logger.warning(
                "alert state backend sqlite: this process was forked while its parent was inside a "
                "transaction on the state file, so SQLite cannot lock it here; throttling and "
                "de-duplication use this process's memory (fork outside state operations to share them)"
            )

    def _sweep(self, connection: Any, now: float) -> None:
        for table in ("claims", "buckets"):
            connection.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE expires <= ? LIMIT ?)",  # noqa: S608 - two fixed names
                (now, SWEEP_STEP),
            )

    def _cap(self, connection: Any) -> None:
        self._writes += 1
        if self._writes % SQLITE_CAP_EVERY:
            return
        for table in ("claims", "buckets"):
            (count,) = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608
            if count > self._max:
                over = count - self._max
                connection.execute(
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY rowid LIMIT ?)",  # noqa: S608
                    (over,),
                )
                first = not self.evicted
                self.evicted += over
                if first:
                    self.logger.warning(
                        "alert state file is full (%d entries): the oldest de-duplication claims and throttle "
                        "budgets are evicted (counted in SQLiteState.evicted); alerts are still delivered",
                        self._max,
                    )

    @staticmethod
    def _live_claim(connection: Any, key: str, now: float) -> bool:
        row = connection.execute("SELECT expires FROM claims WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] > now

    def _claim(self, connection: Any, key: str, window: float, now: float) -> str:
        import secrets  # a claim only: secrets (random, hmac) stays out of the import

        token = secrets.token_hex(8)
        connection.execute(
            "INSERT OR REPLACE INTO claims (key, token, expires) VALUES (?, ?, ?)", (key, token, now + window)
        )
        self._cap(connection)
        return token

    def _acquire(self, connection: Any, buckets: Sequence[Bucket], now: float) -> tuple[float, int] | None:
        query = "SELECT tokens, at FROM buckets WHERE key = ?"
        stored = [connection.execute(query, (bucket.key,)).fetchone() for bucket in buckets]
        levels, refusal = refill(buckets, stored, now)
        if refusal is not None:
            return refusal
        for bucket, tokens in zip(buckets, levels):
            full_at = now + (bucket.capacity - tokens + 1.0) / bucket.refill
            connection.execute(
                "INSERT OR REPLACE INTO buckets (key, tokens, at, expires) VALUES (?, ?, ?, ?)",
                (bucket.key, tokens - 1.0, now, full_at),
            )
        self._cap(connection)
        return None

    def admit(
        self, claim_key: str | None, window: float, buckets: Sequence[Bucket]
    ) -> tuple[str, str | None, float, int]:
        def operation(connection: Any, now: float) -> tuple[str, str | None, float, int]:
            if claim_key is not None and self._live_claim(connection, claim_key, now):
                return "duplicate", None, 0.0, -1
            refused = self._acquire(connection, buckets, now) if buckets else None
            if refused is not None:
                return "throttled", None, refused[0], refused[1]
            token = self._claim(connection, claim_key, window, now) if claim_key is not None else None
            return "ok", token, 0.0, -1

        ok, answer = self._run(operation)
        return answer if ok else self._fallback.admit(claim_key, window, buckets)

    def acquire(self, buckets: Sequence[Bucket]) -> tuple[float, int] | None:
        ok, answer = self._run(lambda connection, now: self._acquire(connection, buckets, now))
        return answer if ok else self._fallback.acquire(buckets)

    def claim(self, key: str, window: float) -> str | None:
        def operation(connection: Any, now: float) -> str | None:
            if self._live_claim(connection, key, now):
                return None
            return self._claim(connection, key, window, now)

        ok, answer = self._run(operation)
        return answer if ok else self._fallback.claim(key, window)

    def release(self, key: str, token: str) -> None:
        ok, _ = self._run(
            lambda connection, now: connection.execute("DELETE FROM claims WHERE key = ? AND token = ?", (key, token))
        )
        if not ok:
            self._fallback.release(key, token)

    def mark_delivered(self, key: str, ttl: float) -> None:
        ok, _ = self._run(lambda connection, now: self._claim(connection, key, ttl, now))
        if not ok:
            self._fallback.mark_delivered(key, ttl)

    def is_delivered(self, key: str) -> bool:
        ok, answer = self._run(lambda connection, now: self._live_claim(connection, key, now))
        return bool(answer) if ok else self._fallback.is_delivered(key)

    def clear(self) -> None:
        self._fallback.clear()
        self._run(lambda connection, now: [connection.execute(f"DELETE FROM {t}") for t in ("claims", "buckets")])  # noqa: S608

    def __len__(self) -> int:
        """Claims and buckets in the file (live or not yet swept); 0 when it cannot be read."""
        ok, answer = self._run(
            lambda connection, now: sum(
                connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("claims", "buckets")
            )
        )
        return int(answer) if ok else 0

    def close(self) -> None:
        """Close the connection; later operations run on this process's memory."""
        self._closed = True
        with self._lock:
            _close_box(self._box)

    def __repr__(self) -> str:
        return "SQLiteState()"


def _close_box(box: list[Any]) -> None:
    """Close the connection in ``box`` (a finaliser: it must not refer to the backend)."""
    connection, box[0] = box[0], None
    if connection is not None:
        try:
            connection.close()
        except Exception:  # noqa: BLE001, S110 - closing is best effort
            pass
