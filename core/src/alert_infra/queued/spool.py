"""The local spool: durable queued delivery in one SQLite file, with nothing to install.

``[alert_infra] delivery = "spool"``: ``send()`` writes the message (the same redacted payload as
a Celery message, never a credential) and commits before it returns; ``alert-infra worker``
drains the file (:mod:`alert_infra.queued.worker`).

The file (WAL, ``synchronous=NORMAL``: a committed row survives any process crash; ``spool_sync =
"full"``: power loss too) holds three tables:

* ``spool``: one row per alert still to deliver: the message, the channels still to do, when it is
  due (a retry is a row whose ``due`` moved on: a row not due is not claimed), the lease (until
  when, which pid on which host holds it) and ``starts`` (claims since the delivery last finished a
  step: a row claimed :data:`MAX_STARTS` times without finishing killed its workers and is
  dead-lettered: kept, never claimed again, ``alert-infra outbox --dead``/``--replay``);
* ``delivered``: the idempotency records (alert id and channel, until when);
* nothing else: the file's size is capped by SQLite itself (``max_page_count`` from
  ``spool_max_bytes``); a write past it fails at once and the sender delivers in-process.

Every connection is per process and thread: a forked child opens its own (never a parent's
connection mid-transaction), and a fork waits (bounded) for the sender's transaction under way.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._lifecycle import on_fork_in_child, quiesce_at_fork
from ..exceptions import AlertInfraError as AlertError
from ..security import guarded_repr
from .poison import DEFAULT_MAX_STARTS, dead_letter_reason, log_dead_letter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .message import Message

__all__ = ["BUSY_TIMEOUT", "MAX_STARTS", "SENDER_CHECKPOINT_PAGES", "Row", "Spool", "SpoolUnavailable"]

_log = logging.getLogger("alert_infra")

#: How long one spool transaction waits for another process's write lock, seconds (the sender's
#: bound for the spool write, together with the file's own I/O).
BUSY_TIMEOUT = 1.0
#: Claims of one row without its delivery finishing (its worker killed each time) before it is
#: dead-lettered (the rule every engine shares: :mod:`.poison`).
MAX_STARTS = DEFAULT_MAX_STARTS
#: How often a process's claims also free the leases of dead holders and dead-letter poison rows.
SWEEP_INTERVAL = 1.0
#: WAL pages after which a *worker's* commit checkpoints the file (SQLite's default).
WORKER_CHECKPOINT_PAGES = 1000
#: WAL pages after which a *sender's* commit checkpoints the file itself (~16 MB): a checkpoint
#: copies the WAL into the file and syncs both, milliseconds that a ``send()`` in a request's
#: thread should not pay every few hundred alerts. With a worker running, its commits checkpoint
#: first (past :data:`WORKER_CHECKPOINT_PAGES`); with none, the sender still does past this
#: bound, so the WAL never grows without one.
SENDER_CHECKPOINT_PAGES = 4096
#: The size a WAL file is cut back to after a checkpoint (it is reused, not grown, from there).
WAL_SIZE_LIMIT = 16 * 1024 * 1024

#: The rows' JSON: compact, UTF-8 as is; one encoder for every write (``json.dumps`` with options
#: builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_INSERT = "INSERT INTO spool (alert_id, body, channels, attempt, created, due) VALUES (?, ?, ?, ?, ?, ?)"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    body TEXT NOT NULL,
    channels TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    due REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    holder_pid INTEGER NOT NULL DEFAULT 0,
    holder_host TEXT NOT NULL DEFAULT '',
    starts INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS spool_due ON spool (dead, due);
CREATE TABLE IF NOT EXISTS delivered (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
"""


def encode_json(value: Any) -> str:
    """``value`` as the rows' JSON: compact, UTF-8 as is."""
    return _encode(value)


def row_body(alert: dict[str, Any], options_json: str) -> str:
    """A row's body, ``{"alert": ..., "options": ...}``, from the alert's dictionary and the
    options already encoded (:func:`encode_json`; a sender encodes its options once)."""
    return '{"alert":' + _encode(alert) + ',"options":' + options_json + "}"


def _row(message: Message) -> tuple[str, str, str | None, int]:
    """``(alert id, body, channels, attempt)`` of ``message``'s row."""
    channels = message.transport_names
    body = row_body(message.alert, _encode(message.options))
    return message.alert_id, body, _encode(channels) if channels is not None else None, message.attempt


class SpoolUnavailable(AlertError):
    """The spool could not take the alert (full, disk full, read-only, locked): the text says
    which, never a path's contents or a value."""


@dataclass(frozen=True, repr=False)
class Row:
    """A claimed row: its id, the message fields and how many times it was claimed."""

    id: int
    alert_id: str
    body: dict[str, Any]
    channels: list[str] | None
    attempt: int
    starts: int

    @guarded_repr
    def __repr__(self) -> str:  # never the body: the row's id, alert id and counts
        return f"Row(id={self.id}, alert_id={self.alert_id!r}, attempt={self.attempt}, starts={self.starts})"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def _why(exc: BaseException) -> str:
    """A short, value-free reason for a failed spool write."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.DatabaseError):
        if "full" in text:
            return "the spool is full (spool_max_bytes, or the disk)"
        if "readonly" in text or "read-only" in text:
            return "the spool is read-only"
        if "locked" in text or "busy" in text:
            return "the spool is locked by another process"
        if "unable to open" in text:
            return "the spool file cannot be opened"
        if "disk i/o" in text:
            return "the spool's disk failed (I/O error)"
    if isinstance(exc, PermissionError):
        return "the spool's folder is not writable"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "the spool's disk is full"
        if exc.errno == errno.EROFS:
            return "the spool is on a read-only file system"
    return f"the spool cannot be written ({type(exc).__name__})"


def _until_started(rows: list[Any]) -> list[Any]:
    """The rows before the first one with a start on record (``starts``, the last field)."""
    taken = []
    for row in rows:
        if row[-1] > 0:
            break
        taken.append(row)
    return taken


class Spool:
    """One spool file. Safe across threads (a connection per thread) and forks (per process)."""

    def __init__(
        self,
        path: str,
        *,
        sync: str = "normal",
        max_bytes: int = 256 * 1024 * 1024,
        lease: float = 30.0,
        busy_timeout: float = BUSY_TIMEOUT,
        checkpoint_pages: int = WORKER_CHECKPOINT_PAGES,
    ) -> None:
        self.path = path
        #: WAL pages after which this process's commits checkpoint (see
        #: :data:`SENDER_CHECKPOINT_PAGES`).
        self.checkpoint_pages = checkpoint_pages
        self.sync = sync
        self.max_bytes = max_bytes
        self.lease = lease
        self.busy_timeout = busy_timeout
        self.host = socket.gethostname()[:255]
        self._local = threading.local()
        self._lock = threading.Lock()  # the sender's transaction; held across a fork (bounded)
        self._ready = False
        self._swept = 0.0

        quiesce_at_fork(self)
        on_fork_in_child(self, Spool._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()  # the parent's connections are abandoned, never used

    # -- connections -------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and getattr(local, "pid", None) == os.getpid():
            return conn
        folder = os.path.dirname(self.path)
        if folder and not os.path.isdir(folder):
            os.makedirs(folder, mode=0o700, exist_ok=True)
        if not os.path.exists(self.path):
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if not self._ready:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode is None or str(mode[0]).lower() != "wal":
                    raise sqlite3.OperationalError("readonly: WAL mode not available")
                conn.executescript(_SCHEMA)
                self._ready = True
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.sync == 'full' else 'NORMAL'}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {int(self.checkpoint_pages)}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            page = int(conn.execute("PRAGMA page_size").fetchone()[0])
            conn.execute(f"PRAGMA max_page_count = {max(16, self.max_bytes // page)}")
        except BaseException:
            conn.close()
            raise
        local.conn, local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            self._local.conn = None
            conn.close()

    # -- the sender -----------------------------------------------------------------------------
    def put(self, message: Message, *, due: float | None = None) -> int:
        """Write ``message`` and commit; its row id.

        Raises:
            SpoolUnavailable: full, disk full, read-only, locked past ``busy_timeout``.
        """
        return self.put_row(*_row(message), due=due)

    def put_row(
        self, alert_id: str, body: str, channels: str | None, attempt: int = 1, *, due: float | None = None
    ) -> int:
        """Write one row already encoded (``body``: the message's JSON ``{"alert": ..., "options":
        ...}``, ``channels``: the JSON list or ``None``) and commit; its row id. What :meth:`put`
        does after encoding: the sender's hot path encodes the body itself (see
        :meth:`~alert_infra.queued.sender.SpoolDispatcher.publish`).

        Raises:
            SpoolUnavailable: as :meth:`put`.
        """
        now = time.time()
        try:
            with self._lock:
                conn = self._conn()
                cursor = conn.execute(_INSERT, (alert_id, body, channels, attempt, now, now if due is None else due))
                row = cursor.lastrowid
        except (sqlite3.Error, OSError) as exc:
            raise SpoolUnavailable(_why(exc)) from None
        return int(row or 0)

    def put_many(self, messages: Sequence[Message]) -> list[int]:
        """Write every message in one transaction (all or none); their row ids, in order. One
        bound for all of them (``busy_timeout``), however many: what an exit hook spools.

        Raises:
            SpoolUnavailable: as :meth:`put`; then no message was written.
        """
        rows = [_row(message) for message in messages]
        ids: list[int] = []
        try:
            with self._lock:
                conn = self._conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    now = time.time()
                    for alert_id, body, channels, attempt in rows:
                        cursor = conn.execute(_INSERT, (alert_id, body, channels, attempt, now, now))
                        ids.append(int(cursor.lastrowid or 0))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OSError) as exc:
            raise SpoolUnavailable(_why(exc)) from None
        return ids

    # -- the worker -----------------------------------------------------------------------------
    def _free_dead_holders(self, conn: sqlite3.Connection, now: float) -> None:
        pids = [
            int(r[0])
            for r in conn.execute(
                "SELECT DISTINCT holder_pid FROM spool WHERE lease_until > ? AND holder_host = ? AND holder_pid != ?",
                (now, self.host, os.getpid()),
            )
        ]
        gone = [pid for pid in pids if not _alive(pid)]
        for pid in gone:
            conn.execute(
                "UPDATE spool SET lease_until = 0 WHERE holder_pid = ? AND holder_host = ? AND lease_until > ?",
                (pid, self.host, now),
            )

    def _sweep(self, conn: sqlite3.Connection, now: float) -> None:
        """Free the leases of holders gone from this machine; dead-letter the rows claimed
        :data:`MAX_STARTS` times without their delivery finishing. At most every
        :data:`SWEEP_INTERVAL` per process (in the claim's transaction)."""
        self._free_dead_holders(conn, now)
        poison = conn.execute(
            "SELECT id, alert_id FROM spool WHERE dead = 0 AND lease_until <= ? AND starts >= ? LIMIT 100",
            (now, MAX_STARTS),
        ).fetchall()
        for row_id, alert_id in poison:
            conn.execute(
                "UPDATE spool SET dead = 1, lease_until = 0, reason = ? WHERE id = ?",
                (dead_letter_reason(MAX_STARTS), row_id),
            )
            log_dead_letter(
                alert_id,
                MAX_STARTS,
                f"spool row {row_id}",
                f"`alert-infra outbox --dead` lists it, `--replay {row_id}` queues it again",
            )

    def claim(self, limit: int = 1, *, sweep: bool = False) -> list[Row]:
        """Lease up to ``limit`` due rows (oldest due first) to this process, in one transaction.
        A row claimed :data:`MAX_STARTS` times without finishing is never claimed again
        (dead-lettered by the sweep; ``sweep``: sweep now, not at most every
        :data:`SWEEP_INTERVAL`).

        Each claim counts one start of every row it leases. A row with a start on record (its
        delivery did not finish: a worker was killed while it held the row) is claimed alone, never
        in a batch: a row leased beside the one that killed its worker is charged that kill once,
        and every later start of it is its own, so rows behind a poison row are delivered, not
        dead-lettered with it."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()  # in the transaction: a wait for the write lock does not age the lease
            if sweep or now - self._swept >= SWEEP_INTERVAL or now < self._swept:
                self._swept = now
                self._sweep(conn, now)
            rows = conn.execute(
                "SELECT id, alert_id, body, channels, attempt, starts FROM spool "
                "WHERE dead = 0 AND due <= ? AND lease_until <= ? AND starts < ? ORDER BY due, id LIMIT ?",
                (now, now, MAX_STARTS, max(1, int(limit))),
            ).fetchall()
            if rows and rows[0][5] > 0:
                rows = rows[:1]  # a row with a start on record: alone
            else:
                rows = _until_started(rows)
            lease = (now + self.lease, os.getpid(), self.host)
            conn.executemany(
                "UPDATE spool SET lease_until = ?, holder_pid = ?, holder_host = ?, starts = starts + 1 WHERE id = ?",
                [(*lease, row[0]) for row in rows],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        claimed = []
        for row_id, alert_id, body, channels, attempt, starts in rows:
            try:
                decoded = json.loads(body)
                names = json.loads(channels) if channels is not None else None
            except ValueError:
                decoded, names = None, None
            claimed.append(Row(row_id, alert_id, decoded, names, attempt, starts + 1))
        return claimed

    def waiting(self, due_by: float) -> float | None:
        """When the next row due by ``due_by`` that no live worker of this machine holds can be
        claimed (wall clock): now for a row not leased or leased by a process gone from this
        machine (the next claim's sweep frees it), its lease's end for a row leased from another
        machine; ``None`` when there is none (every such row is delivered, or held by a live
        worker here)."""
        conn = self._conn()
        now = time.time()
        soonest: float | None = None
        for until, pid, host in conn.execute(
            "SELECT lease_until, holder_pid, holder_host FROM spool WHERE dead = 0 AND due <= ? AND starts < ? "
            "ORDER BY lease_until LIMIT 1000",
            (due_by, MAX_STARTS),
        ):
            if until <= now or (host == self.host and not _alive(int(pid))):
                return now
            if host == self.host:
                continue  # a live worker of this machine delivers it
            soonest = until if soonest is None else min(soonest, until)
        return soonest

    def renew(self, ids: Sequence[int]) -> None:
        """Extend this process's leases of ``ids`` by one lease from now."""
        if not ids:
            return
        conn = self._conn()
        marks = ",".join("?" * len(ids))
        conn.execute(
            f"UPDATE spool SET lease_until = ? WHERE holder_pid = ? AND id IN ({marks})",  # noqa: S608 - placeholders
            (time.time() + self.lease, os.getpid(), *ids),
        )

    def finish(self, row_id: int) -> None:
        """Every channel is done: delete the row."""
        self._conn().execute("DELETE FROM spool WHERE id = ?", (row_id,))

    def reschedule(self, row_id: int, channels: Sequence[str], countdown: float, attempt: int) -> None:
        """Retry ``channels`` in ``countdown`` seconds: the row is due then, unleased, its count of
        starts back to 0 (the delivery finished a step)."""
        self._conn().execute(
            "UPDATE spool SET channels = ?, attempt = ?, due = ?, lease_until = 0, holder_pid = 0, starts = 0 "
            "WHERE id = ?",
            (json.dumps(list(channels)), attempt, time.time() + countdown, row_id),
        )

    def release(self, row_id: int) -> None:
        """Give a claimed row back undelivered (a graceful stop before its delivery began)."""
        self._conn().execute(
            "UPDATE spool SET lease_until = 0, holder_pid = 0, starts = MAX(starts - 1, 0) WHERE id = ?", (row_id,)
        )

    def dead_letter(self, row_id: int, reason: str) -> None:
        self._conn().execute(
            "UPDATE spool SET dead = 1, lease_until = 0, reason = ? WHERE id = ?", (reason[:200], row_id)
        )

    def settle(
        self,
        *,
        records: Sequence[tuple[str, float]] = (),
        done: Sequence[int] = (),
        retry: Sequence[tuple[int, Sequence[str], float, int]] = (),
        dead: Sequence[tuple[int, str]] = (),
        release: Sequence[int] = (),
    ) -> None:
        """What a worker's deliveries did, in one transaction (all or none): the idempotency
        ``records`` (``(key, ttl)``) are written with the rows they finish, so a row is never
        deleted without them; ``done`` rows are deleted, ``retry`` rows (``(id, channels,
        countdown, attempt)``) rescheduled as :meth:`reschedule`, ``dead`` rows (``(id, reason)``)
        dead-lettered, ``release`` rows given back as :meth:`release`."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            if records:
                conn.executemany(
                    "INSERT OR REPLACE INTO delivered (key, expires) VALUES (?, ?)",
                    [(key, now + ttl) for key, ttl in records],
                )
            if done:
                conn.executemany("DELETE FROM spool WHERE id = ?", [(row_id,) for row_id in done])
            if retry:
                conn.executemany(
                    "UPDATE spool SET channels = ?, attempt = ?, due = ?, lease_until = 0, holder_pid = 0, starts = 0 "
                    "WHERE id = ?",
                    [(_encode(list(names)), attempt, now + wait, row_id) for row_id, names, wait, attempt in retry],
                )
            if dead:
                conn.executemany(
                    "UPDATE spool SET dead = 1, lease_until = 0, reason = ? WHERE id = ?",
                    [(reason[:200], row_id) for row_id, reason in dead],
                )
            if release:
                conn.executemany(
                    "UPDATE spool SET lease_until = 0, holder_pid = 0, starts = MAX(starts - 1, 0) WHERE id = ?",
                    [(row_id,) for row_id in release],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- idempotency records ----------------------------------------------------------------------
    def delivered(self, keys: Sequence[str]) -> list[str]:
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = self._conn().execute(
            f"SELECT key FROM delivered WHERE expires > ? AND key IN ({marks})",  # noqa: S608 - placeholders
            (time.time(), *keys),
        )
        return [r[0] for r in rows]

    def mark_delivered(self, key: str, ttl: float) -> None:
        self._conn().execute("INSERT OR REPLACE INTO delivered (key, expires) VALUES (?, ?)", (key, time.time() + ttl))

    def mark_all_delivered(self, keys: Sequence[str], ttl: float) -> None:
        for key in keys:
            self.mark_delivered(key, ttl)

    def prune(self) -> int:
        """Drop expired idempotency records; how many."""
        return int(self._conn().execute("DELETE FROM delivered WHERE expires <= ?", (time.time(),)).rowcount or 0)

    # -- the outbox view --------------------------------------------------------------------------
    def status(self, overdue: float) -> dict[str, Any]:
        """``pending`` (rows not done and not dead), ``due`` (due now), ``overdue`` (due for more
        than ``overdue`` seconds), ``oldest_age`` (seconds since the oldest pending row was
        spooled), ``leased``, ``dead``."""
        conn = self._conn()
        now = time.time()
        pending, due, late, oldest, leased = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(due <= ?), 0), COALESCE(SUM(due <= ?), 0), MIN(created), "
            "COALESCE(SUM(lease_until > ?), 0) FROM spool WHERE dead = 0",
            (now, now - overdue, now),
        ).fetchone()
        dead = conn.execute("SELECT COUNT(*) FROM spool WHERE dead = 1").fetchone()[0]
        return {
            "pending": int(pending),
            "due": int(due),
            "overdue": int(late),
            "oldest_age": (now - float(oldest)) if oldest is not None else None,
            "leased": int(leased),
            "dead": int(dead),
        }

    def dead(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The dead-lettered rows: ``id``, ``alert_id``, ``title``, ``reason``, ``created``."""
        out = []
        for row_id, alert_id, body, reason, created in self._conn().execute(
            "SELECT id, alert_id, body, reason, created FROM spool WHERE dead = 1 ORDER BY id LIMIT ?", (limit,)
        ):
            try:
                title = str(json.loads(body).get("alert", {}).get("title", ""))[:200]
            except (ValueError, AttributeError):
                title = ""
            out.append({"id": row_id, "alert_id": alert_id, "title": title, "reason": reason, "created": created})
        return out

    def replay(self, row_id: int) -> bool:
        """Queue a dead-lettered row again (due now, its count of starts at 0)."""
        cursor = self._conn().execute(
            "UPDATE spool SET dead = 0, starts = 0, due = ?, lease_until = 0, reason = NULL WHERE id = ? AND dead = 1",
            (time.time(), row_id),
        )
        return bool(cursor.rowcount)

    def next_due(self) -> float | None:
        """When the next row not leased becomes due (wall clock), ``None`` when none waits."""
        row = self._conn().execute("SELECT MIN(MAX(due, lease_until)) FROM spool WHERE dead = 0").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    @guarded_repr
    def __repr__(self) -> str:
        return f"Spool({self.path!r})"
