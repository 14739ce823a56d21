"""The audit trail: every alert (redacted) and what each channel did with it, in SQLite.

:class:`AuditStore` is a small SQLite database (stdlib :mod:`sqlite3`, WAL
journal, a schema version in ``PRAGMA user_version`` for later migrations) that
several processes may write at once. :class:`AuditTrail` feeds it from the
``alert_infra_after_dispatch`` hook, so it sees exactly what any audit plugin
sees: the redacted alert and its :class:`~alert_infra.DeliveryResult`.

Enable it in configuration::

    [alert_infra]
    audit = "sqlite:///var/lib/myapp/alerts.sqlite3"   # or sqlite:///~/alerts.sqlite3
    audit_retention = 10000                             # keep the newest N alerts (default)

or in code: ``AlertDispatcher(..., audit=AuditTrail(AuditStore(path)))``, or for
every dispatcher of the process: ``register_plugin(AuditTrail(store))``. The
``alert-infra`` command line records to the configured trail, or to
:func:`default_audit_path` (under ``$XDG_STATE_HOME``) when none is configured.

Nobody waits for the database
-----------------------------
The hook is called in the caller's thread (``send()``) and on the event loop
(``asend()``, a trail registered as a plugin), so it never touches SQLite: it
builds the row (the redacted alert and its outcomes, a snapshot) and puts it on
a bounded in-memory queue. One daemon writer thread per trail (started on the
first record, ended after :data:`IDLE_EXIT` seconds without work, restarted on
demand) writes the queue in batches of up to :data:`BATCH_SIZE`, one
transaction per batch. The bounds, and how to change them:

* :data:`MAX_PENDING` (10,000) records wait at most: ``AuditTrail(store,
  max_pending=...)``. A record that finds the queue full is *dropped and
  counted* (``trail.dropped``); one WARNING per overflow episode gives the count
  when the writer catches up.
* A locked or failing database: each attempt waits at most
  :data:`WRITE_ATTEMPT_TIMEOUT` (0.25 s) for another process's lock, then the
  writer backs off (:data:`RETRY_INITIAL` 0.05 s doubling up to
  :data:`RETRY_MAX` 2 s, with jitter) and retries for as long as it takes,
  the records staying queued (up to the cap). One WARNING when the outage
  starts, one when the writer recovers.
* :meth:`AuditTrail.flush` waits at most its ``timeout`` (default
  :data:`FLUSH_TIMEOUT`, 2 s); :meth:`AuditTrail.close` flushes with
  ``close_timeout`` (default :data:`FLUSH_TIMEOUT`), then stops the writer; an
  ``atexit`` hook flushes every live trail within :data:`EXIT_TIMEOUT` (2 s in
  all). Records still pending after such a bound are given up: counted in
  ``trail.failed`` and reported on standard error (as ``AlertHandler`` reports
  its drops), never silently lost.
* A record the database refuses for good (a data error, not a lock or I/O
  error) is given up alone and counted in ``trail.failed``.

:meth:`AuditTrail.stats` reports ``pending``, ``written``, ``dropped`` and
``failed``; :attr:`AuditTrail.last_id` is the id of the last record the writer
wrote (call :meth:`~AuditTrail.flush` first to know it is the one you sent).

Direct users of :class:`AuditStore` keep a synchronous API (``record()``
returns the new id) with a bounded wait: ``AuditStore(timeout=...)`` (default
:data:`DEFAULT_TIMEOUT`, 10 s) bounds the wait for this process's other
threads *and* another process's lock together; past it, ``sqlite3.OperationalError``.

Fork and release
----------------
A forked child (gunicorn ``--preload``, Celery prefork) gets, through
:func:`alert_infra._lifecycle.on_fork_in_child`, new locks (a parent thread may
have held the old one, mid-write), no connection (the parent's is kept
referenced, never closed nor used, in the child: closing it would release the
child's own POSIX locks on the file), an empty queue (what the parent queued is
the parent's to write) and no writer thread (one starts on the child's first
record). A store dropped without :meth:`AuditStore.close` closes its connection
(``weakref.finalize``); a trail dropped without :meth:`AuditTrail.close` stops
its writer once the queue is written (within ``close_timeout``), and the writer
holds the queue and the store only, never the trail.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
import weakref
from _thread import allocate_lock
from collections import deque
from contextlib import contextmanager
from contextvars import ContextVar

from ._checks import MAX_COUNT, MAX_TIMEOUT, check_count, check_seconds, sqlite_file
from ._lifecycle import forked_while_busy, on_fork_in_child, quiesce_at_fork
from .alert import severity_rank
from .exceptions import AlertConfigurationError, AlertInfraError, failure_class_of
from .hookspecs import hookimpl
from .result import failure_class
from .security import guarded_repr

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Iterator, Sequence
    from typing import Any

    from .alert import Alert
    from .result import DeliveryResult

__all__ = [
    "SUPPRESSION_REASONS",
    "AuditRecord",
    "AuditStore",
    "AuditTrail",
    "default_audit_path",
    "delivery_id",
    "open_audit",
    "path_from_url",
    "reset_delivery_id",
    "set_delivery_id",
]

#: Why a channel skipped an alert (an outcome's ``suppressed_by``), as ``history --status`` takes them.
SUPPRESSION_REASONS = ("routing", "dedup", "throttle", "silence", "inhibit", "unmatched")

#: The schema version written to ``PRAGMA user_version``; a newer file is refused. Version 2 adds
#: ``alerts.delivery_id`` (queued delivery), version 3 ``outcomes.failure_class`` (the failure
#: classification, :func:`alert_infra.result.failure_class`), version 4 ``alerts.correlation_id`` (the
#: alert's correlation id: ``alert-infra resolve`` and ``ack`` carry the firing alert's into theirs, so
#: the trail joins a resolve to its firing alert); an older file is upgraded in place when opened (its
#: rows keep no correlation id: ``NULL``).
SCHEMA_VERSION = 4
#: An outcome whose ``detail`` starts with this is an enqueue (:mod:`alert_infra.celery`): a record
#: made only of such outcomes sums up as ``queued``.
QUEUED_DETAIL = "queued as task "

_DELIVERY_ID: ContextVar[str | None] = ContextVar("alert_infra_delivery_id", default=None)


def set_delivery_id(value: str | None) -> object:
    """Mark the records made in this context (thread, task) as part of one queued delivery: the
    enqueue and every try of the worker share ``value`` (``alert-infra history`` joins them by
    it). Returns the token for :func:`reset_delivery_id`."""
    return _DELIVERY_ID.set(value if isinstance(value, str) and value else None)


def reset_delivery_id(token: object) -> None:
    """Undo :func:`set_delivery_id`."""
    _DELIVERY_ID.reset(token)  # type: ignore[arg-type]


def delivery_id() -> str | None:
    """The queued delivery the records of this context belong to, if any."""
    return _DELIVERY_ID.get()


#: Alerts kept by default (``AuditStore(retention=...)``, ``audit_retention`` in configuration).
DEFAULT_RETENTION = 10_000
#: How long a direct :class:`AuditStore` call waits, in all, for this process's other threads and
#: another process's write lock (seconds; ``AuditStore(timeout=...)``, 0 to fail at once).
DEFAULT_TIMEOUT = 10.0
#: Records an :class:`AuditTrail` keeps waiting for its writer; more are dropped and counted
#: (``AuditTrail(store, max_pending=...)``).
MAX_PENDING = 10_000
#: Records written in one transaction by a trail's writer.
BATCH_SIZE = 500
#: How long one write attempt of a trail's writer waits for another process's lock (seconds)
#: before it backs off; also its wait for this process's other users of the store.
WRITE_ATTEMPT_TIMEOUT = 0.25
#: The writer's first back-off after a failed attempt (seconds); it doubles on each failure...
RETRY_INITIAL = 0.05
#: ...up to this (seconds). The writer retries for as long as the outage lasts.
RETRY_MAX = 2.0
#: Default bound of :meth:`AuditTrail.flush` and of :meth:`AuditTrail.close` (``close_timeout``), seconds.
FLUSH_TIMEOUT = 2.0
#: The ``atexit`` hook's bound for writing what every live trail still holds (seconds, in all).
EXIT_TIMEOUT = 2.0
#: A writer with nothing to do for this long ends (seconds); the next record starts a new one.
IDLE_EXIT = 60.0
#: The writer thread's name (alert-infra's own threads start with "alert-infra").
WRITER_NAME = "alert-infra-audit-writer"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    source TEXT,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    alert_status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    acknowledged_at REAL,
    acknowledged_by TEXT,
    ack_note TEXT,
    delivery_id TEXT,
    correlation_id TEXT
);
CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created_at);
CREATE INDEX IF NOT EXISTS alerts_fingerprint ON alerts (fingerprint);
CREATE TABLE IF NOT EXISTS outcomes (
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    suppressed_by TEXT,
    attempts INTEGER NOT NULL,
    elapsed REAL NOT NULL,
    error TEXT,
    reason TEXT,
    detail TEXT,
    failure_class TEXT,
    PRIMARY KEY (alert_id, position)
);
CREATE INDEX IF NOT EXISTS outcomes_channel ON outcomes (channel, status);
"""
#: Upgrades from each older schema version to the next (run in one transaction when a file is opened).
_UPGRADES = {
    1: ("ALTER TABLE alerts ADD COLUMN delivery_id TEXT",),
    2: ("ALTER TABLE outcomes ADD COLUMN failure_class TEXT",),
    3: ("ALTER TABLE alerts ADD COLUMN correlation_id TEXT",),
}
_INDEXES = "CREATE INDEX IF NOT EXISTS alerts_delivery ON alerts (delivery_id)"


def default_audit_path() -> str:
    """``$XDG_STATE_HOME/alert-infra/audit.sqlite3`` (``~/.local/state`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "alert-infra", "audit.sqlite3")


def path_from_url(url: object) -> str:
    """The file of an ``audit = "sqlite:///…"`` setting (``sqlite:///~/…`` expands the home folder).

    Raises:
        AlertConfigurationError: not a ``sqlite:///`` URL naming a file (the message never
            quotes the value).
    """
    return sqlite_file(url, "audit", "sqlite:///var/lib/app/alerts.sqlite3")


class AuditRecord:
    """One audited alert: what was sent, when, to which channels, with what outcome.

    ``outcome`` sums the dispatch up: ``sent`` (every asked channel delivered),
    ``failed`` (at least one failed), ``partial`` (some delivered, some failed),
    ``suppressed`` (nothing was asked: all skipped), ``queued`` (handed to a queue, see
    :mod:`alert_infra.celery`) or ``empty``. ``delivery_id`` joins the records of one queued
    delivery: its enqueue and each of the worker's tries. ``correlation_id`` is the alert's
    (redacted as the alert is); a resolve or acknowledge sent by ``alert-infra resolve``/``ack``
    carries its firing alert's, so the three records share it (``None``: a record written before
    schema version 4).
    """

    __slots__ = (
        "id",
        "created_at",
        "title",
        "message",
        "severity",
        "source",
        "tags",
        "metadata",
        "fingerprint",
        "alert_status",
        "outcome",
        "acknowledged_at",
        "acknowledged_by",
        "ack_note",
        "delivery_id",
        "correlation_id",
        "channels",
    )

    def __init__(self, row: sqlite3.Row, channels: list[dict[str, Any]]) -> None:
        self.id: int = row["id"]
        self.created_at: float = row["created_at"]
        self.title: str = row["title"]
        self.message: str = row["message"]
        self.severity: str = row["severity"]
        self.source: str | None = row["source"]
        self.tags: list[str] = json.loads(row["tags"])
        self.metadata: dict[str, Any] = json.loads(row["metadata"])
        self.fingerprint: str = row["fingerprint"]
        self.alert_status: str = row["alert_status"]
        self.outcome: str = row["outcome"]
        self.acknowledged_at: float | None = row["acknowledged_at"]
        self.acknowledged_by: str | None = row["acknowledged_by"]
        self.ack_note: str | None = row["ack_note"]
        keys = row.keys()
        self.delivery_id: str | None = row["delivery_id"] if "delivery_id" in keys else None
        self.correlation_id: str | None = row["correlation_id"] if "correlation_id" in keys else None
        self.channels = channels

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (``alert-infra history --json``)."""
        return {slot: getattr(self, slot) for slot in self.__slots__} | {"acknowledged": self.acknowledged}

    @guarded_repr
    def __repr__(self) -> str:
        return f"AuditRecord(id={self.id}, severity={self.severity!r}, title={self.title!r}, outcome={self.outcome!r})"


def _summary(result: DeliveryResult) -> str:
    asked = [o for o in result.outcomes if o.status not in ("skipped", "held")]
    if not result.outcomes:
        return "empty"
    if not asked:
        # Held for a group's digest (on every channel that took it): not sent yet, not suppressed.
        return "held" if any(o.status == "held" for o in result.outcomes) else "suppressed"
    if not result.failed:
        if all(o.status == "sent" and (o.detail or "").startswith(QUEUED_DETAIL) for o in asked):
            return "queued"
        return "sent"
    return "partial" if result.sent else "failed"


#: Nesting kept when metadata must be made JSON-safe by :func:`_json_safe` (deeper levels are elided).
_SAFE_DEPTH = 32


def _json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` with whatever JSON can't encode replaced by a short text (a 5,000-digit integer
    raises ``ValueError`` in ``json.dumps``; a cycle, ``ValueError``; an odd key, ``TypeError``)."""
    if depth > _SAFE_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else f"<integer of {value.bit_length()} bits>"
    return f"<{type(value).__name__}>"


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(_json_safe(value), default=str, sort_keys=True)


#: One alert as the store writes it: the ``alerts`` columns, then each outcome's columns.
if TYPE_CHECKING:
    _Row = tuple[tuple[Any, ...], list[tuple[Any, ...]]]


def _build_row(alert: Alert, result: DeliveryResult, at: float | None) -> _Row:
    """The row for ``alert`` (redacted here, whatever the caller did) and ``result``: a snapshot."""
    safe = alert.redacted()  # always: an alert sent with redaction off is still stored redacted
    head = (
        at if at is not None else time.time(),
        safe.title,
        safe.message,
        safe.severity,
        safe.severity_rank,
        safe.source,
        _dumps(list(safe.tags)),
        _dumps(dict(safe.metadata)),
        safe.fingerprint,
        safe.status,
        _summary(result),
        _DELIVERY_ID.get(),
        safe.correlation_id,
    )
    # The failure class is written as the delivering process sees it: a plugin's exception class
    # is known there, not necessarily in the process that reads the trail (``alert-infra status``).
    outcomes = [
        (
            position,
            o.name,
            o.status,
            o.suppressed_by,
            o.attempts,
            float(o.elapsed),
            o.error,
            o.reason,
            o.detail,
            failure_class(o),
        )
        for position, o in enumerate(result.outcomes)
    ]
    return head, outcomes


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001, S110 - a finalizer must not raise (interpreter exit, another thread)
        pass


#: Connections inherited from the parent by a forked child: kept referenced, never used nor closed
#: (closing one would drop the child's own POSIX locks on the file; garbage collection would close it).
_INHERITED: list[Any] = []


class AuditStore:
    """A SQLite audit store, safe for several threads and processes writing at once.

    Args:
        path: the database file (its folder is created). ``":memory:"`` for tests.
        retention: keep at most this many alerts; older ones are removed as new
            ones arrive (default 10,000; ``None`` keeps everything).
        timeout: the longest a call waits, in all, for this process's other threads
            using the store and for another process's write lock, in seconds
            (default :data:`DEFAULT_TIMEOUT`; 0 fails at once). Past it the call raises
            ``sqlite3.OperationalError`` ("database is locked").

    Calls are synchronous (``record()`` returns the new id). :class:`AuditTrail` writes
    through the same store from its own thread, so that no dispatch ever waits for it.
    """

    def __init__(
        self, path: str, *, retention: int | None = DEFAULT_RETENTION, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if retention is not None:
            check_count(retention, "audit_retention", maximum=MAX_COUNT, error=AlertConfigurationError)
        self.path = path
        self.retention = retention
        self._timeout = check_seconds(
            timeout, "audit timeout", maximum=MAX_TIMEOUT, zero=True, error=AlertConfigurationError
        )
        self._lock = allocate_lock()
        self._conn: sqlite3.Connection | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None  # closes the connection when the store is dropped
        self._pid = os.getpid()
        self._writes = 0
        self._forked_busy = False
        on_fork_in_child(self, AuditStore._after_fork)
        quiesce_at_fork(self)  # no write transaction of ours is open when the process is copied

    def _after_fork(self) -> None:
        # In a forked child: a parent thread may have held the lock mid-write, and the connection
        # is the parent's. Replace the one, set the other aside (never close it here), reconnect lazily.
        from .state import inside_transaction  # a forked child only: importing audit loads no state backends

        self._lock = allocate_lock()
        # Forked while a write of the parent's was still open (it could not be waited for): SQLite's
        # in-process lock bookkeeping says this very process holds the file, so no write can succeed
        # here; they fail at once (and are reported) instead of each waiting out the timeout.
        self._forked_busy = forked_while_busy(self) and inside_transaction(self._conn)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._conn is not None:
            _INHERITED.append(self._conn)
            self._conn = None
        self._pid = os.getpid()

    # -- connection ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self, timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        """The store's lock and connection, waiting at most ``timeout`` (default: the store's) in all."""
        import sqlite3  # a trail's database only: sqlite3 stays out of `import alert_infra.audit`

        bound = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + bound
        if self._forked_busy:
            raise sqlite3.OperationalError("database is locked (this process was forked inside a write of its parent)")
        if not self._lock.acquire(True, bound):  # bound <= MAX_TIMEOUT < threading.TIMEOUT_MAX
            raise sqlite3.OperationalError("database is locked (by another thread of this process)")
        try:
            conn = self._connect(bound)
            left = max(0.0, deadline - time.monotonic())
            conn.execute(f"PRAGMA busy_timeout = {int(left * 1000)}")
            yield conn
        finally:
            self._lock.release()

    def _connect(self, timeout: float) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None and self._pid == os.getpid() and self._finalizer is not None and self._finalizer.alive:
            return conn
        if conn is not None and self._pid != os.getpid():  # forked without the reset (no register_at_fork)
            _INHERITED.append(conn)
        self._conn = None
        import sqlite3  # a trail's database only: sqlite3 stays out of `import alert_infra.audit`

        if self.path != ":memory:":
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
        finalizer = weakref.finalize(self, _close_quietly, conn)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise AlertConfigurationError(
                    f"audit: {self.path} has schema version {version}; this alert-infra reads up to "
                    f"{SCHEMA_VERSION} (upgrade alert-infra)"
                )
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")  # one process creates the schema; the others wait, then see it
                try:
                    # Another process may have upgraded it while this one waited for the lock.
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    if version == 0:
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                    else:
                        for step in range(version, SCHEMA_VERSION):
                            for statement in _UPGRADES[step]:
                                conn.execute(statement)
                    conn.execute(_INDEXES)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except BaseException:
            finalizer()
            raise
        self._conn, self._finalizer, self._pid = conn, finalizer, os.getpid()
        return conn

    # -- writing ------------------------------------------------------------------------------
    @contextmanager
    def _write(self, timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``BEGIN IMMEDIATE`` takes the write lock up front, so two
        processes never both read, then both try to upgrade (SQLite's deadlock case)."""
        with self._locked(timeout) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _write_rows(self, rows: Sequence[_Row], *, timeout: float | None = None) -> list[int]:
        """Write ``rows`` in one transaction; their ids. Waits at most ``timeout`` (default: the store's)."""
        ids: list[int] = []
        with self._write(timeout) as conn:
            for head, outcomes in rows:
                cursor = conn.execute(
                    "INSERT INTO alerts (created_at, title, message, severity, severity_rank, source, tags, "
                    "metadata, fingerprint, alert_status, outcome, delivery_id, correlation_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    head,
                )
                alert_id = int(cursor.lastrowid or 0)
                conn.executemany(
                    "INSERT INTO outcomes (alert_id, position, channel, status, suppressed_by, attempts, elapsed, "
                    "error, reason, detail, failure_class) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(alert_id, *outcome) for outcome in outcomes],
                )
                ids.append(alert_id)
            before, self._writes = self._writes, self._writes + len(rows)
            if before == 0 or before // 100 != self._writes // 100:  # retention: once every 100 writes
                self._prune(conn)
        return ids

    def record(self, alert: Alert, result: DeliveryResult, *, at: float | None = None) -> int:
        """Store the (redacted) ``alert`` and the per-channel outcomes of ``result``; its id.

        Synchronous: waits at most the store's ``timeout``, then raises ``sqlite3.OperationalError``.
        """
        return self._write_rows([_build_row(alert, result, at)])[0]

    def acknowledge(self, alert_id: int, *, by: str, note: str | None = None, at: float | None = None) -> AuditRecord:
        """Mark an alert acknowledged by ``by``; a second acknowledgement keeps the first.

        Raises:
            AlertInfraError: no alert has that id (it may have passed the retention limit).
        """
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?, ack_note = ? "
                "WHERE id = ? AND acknowledged_at IS NULL",
                (at if at is not None else time.time(), by, note, alert_id),
            ).rowcount
            exists = changed or conn.execute("SELECT 1 FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        if not exists:
            raise AlertInfraError(f"no alert with id {alert_id} in the audit trail {self.path}")
        record = self.get(alert_id)
        assert record is not None
        return record

    def prune(self) -> int:
        """Apply the retention limit now; the number of alerts removed."""
        with self._locked() as conn:
            return self._prune(conn)

    def _prune(self, conn: sqlite3.Connection) -> int:
        if self.retention is None:
            return 0
        # Keep the newest `retention` alerts; their outcomes go with them (ON DELETE CASCADE).
        return conn.execute(
            "DELETE FROM alerts WHERE id <= (SELECT id FROM alerts ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (self.retention,),
        ).rowcount

    # -- reading ------------------------------------------------------------------------------
    def get(self, alert_id: int) -> AuditRecord | None:
        found = self.query(ids=[alert_id], limit=1)
        return found[0] if found else None

    def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        min_severity: str | None = None,
        source: str | None = None,
        channel: str | None = None,
        status: str | None = None,
        acknowledged: bool | None = None,
        ids: Iterable[int] | None = None,
        delivery_id: str | None = None,
        fingerprint: str | None = None,
        alert_status: str | None = None,
        limit: int = 50,
    ) -> list[AuditRecord]:
        """The newest alerts first, filtered.

        Args:
            since, until: UNIX times bounding ``created_at``.
            min_severity: this severity or higher.
            source: exactly this source.
            channel: alerts that involved this channel.
            status: with ``channel``, that channel's outcome status (``sent``,
                ``failed``, ``skipped``, ``held``); without it, the alert's summary
                (``sent``, ``failed``, ``partial``, ``suppressed``, ``queued``), or ``held``:
                alerts that a channel's grouping held for a digest. Or a
                reason a channel was skipped (:data:`SUPPRESSION_REASONS`: ``silence``,
                ``unmatched``, ...): alerts that a channel (``channel``, or any) skipped for it.
            acknowledged: only acknowledged (True) or unacknowledged (False) alerts.
            delivery_id: the records of one queued delivery (its enqueue and the worker's
                tries), newest first.
            fingerprint: the alerts of this fingerprint (its firing, acknowledged and resolved
                notifications: ``alert-infra resolve`` and ``ack`` find the firing one).
            alert_status: alerts sent with this status (``firing``, ``acknowledged``, ``resolved``).
        """
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("a.created_at >= ?")
            args.append(since)
        if until is not None:
            where.append("a.created_at <= ?")
            args.append(until)
        if min_severity is not None:
            where.append("a.severity_rank >= ?")
            args.append(severity_rank(min_severity))
        if source is not None:
            where.append("a.source = ?")
            args.append(source)
        if status in SUPPRESSION_REASONS:
            clause = "EXISTS (SELECT 1 FROM outcomes o WHERE o.alert_id = a.id AND o.suppressed_by = ?"
            args.append(status)
            if channel is not None:
                clause += " AND o.channel = ?"
                args.append(channel)
            where.append(clause + ")")
        elif channel is not None:
            clause = "EXISTS (SELECT 1 FROM outcomes o WHERE o.alert_id = a.id AND o.channel = ?"
            args.append(channel)
            if status is not None:
                clause += " AND o.status = ?"
                args.append(status)
            where.append(clause + ")")
        elif status == "held":  # any channel held it (the summary says "held" only when all did)
            where.append("EXISTS (SELECT 1 FROM outcomes o WHERE o.alert_id = a.id AND o.status = 'held')")
        elif status is not None:
            where.append("a.outcome = ?")
            args.append(status)
        if acknowledged is not None:
            where.append("a.acknowledged_at IS NOT NULL" if acknowledged else "a.acknowledged_at IS NULL")
        if delivery_id is not None:
            where.append("a.delivery_id = ?")
            args.append(str(delivery_id))
        if fingerprint is not None:
            where.append("a.fingerprint = ?")  # indexed (alerts_fingerprint)
            args.append(str(fingerprint))
        if alert_status is not None:
            where.append("a.alert_status = ?")
            args.append(str(alert_status))
        if ids is not None:
            wanted = [int(i) for i in ids]
            where.append(f"a.id IN ({', '.join('?' * len(wanted)) or 'NULL'})")
            args.extend(wanted)
        sql = "SELECT * FROM alerts a"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.id DESC LIMIT ?"
        args.append(max(0, int(limit)))
        with self._locked() as conn:
            rows = conn.execute(sql, args).fetchall()
            channels: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
            if rows:
                marks = ", ".join("?" * len(rows))
                for o in conn.execute(
                    f"SELECT * FROM outcomes WHERE alert_id IN ({marks}) ORDER BY alert_id, position",  # noqa: S608
                    [row["id"] for row in rows],
                ):
                    entry = {k: o[k] for k in o.keys() if k not in ("alert_id", "position")}  # noqa: SIM118
                    if entry["status"] == "failed" and not entry.get("failure_class"):
                        # written before version 3: classified by its class name now
                        entry["failure_class"] = failure_class_of(entry.get("error")) or "other"
                    channels[o["alert_id"]].append(entry)
        return [AuditRecord(row, channels[row["id"]]) for row in rows]

    def count(self) -> int:
        with self._locked() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    def close(self) -> None:
        """Close the connection (the next call opens a new one). Waits at most the store's ``timeout``
        for a write in progress; past it, the connection is closed when the store is dropped."""
        if not self._lock.acquire(True, self._timeout):
            return
        try:
            finalizer, self._finalizer, self._conn = self._finalizer, None, None
        finally:
            self._lock.release()
        if finalizer is not None:
            finalizer()

    @guarded_repr
    def __repr__(self) -> str:
        return f"AuditStore({self.path!r})"


def _is_data_error(exc: BaseException) -> bool:
    """A record the database refuses for good (retrying it would block every later record)."""
    import sqlite3  # a trail's database only: sqlite3 stays out of `import alert_infra.audit`

    if isinstance(exc, AlertInfraError):  # e.g. a newer schema: the database's problem, not the record's
        return False
    return isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError, ValueError, TypeError)
    )


class _Pipe:
    """A trail's queue, counters and store: all its writer thread holds (never the trail itself,
    so a trail dropped without ``close()`` is collected, which stops the writer)."""

    def __init__(self, store: AuditStore, capacity: int, close_timeout: float) -> None:
        self.store = store
        self.capacity = capacity
        self.close_timeout = close_timeout
        self._reset()
        on_fork_in_child(self, _Pipe._reset)
        _hook_exit()  # now, not at the first write: see _hook_exit

    def _reset(self) -> None:
        """A fresh state: at creation, and in a forked child (new lock, empty queue, no writer:
        what the parent queued is the parent's to write)."""
        # Reentrant: the finalizer of a dropped trail may run (garbage collection) in a thread that holds it.
        self.cond = threading.Condition(threading.RLock())
        self.queue: deque[_Row] = deque()
        self.thread: threading.Thread | None = None
        self.idle = False  # the writer waits for work (a new record must wake it)
        self.stop_at: float | None = None  # monotonic time after which the writer gives up and ends
        self.epoch = 0  # bumped when pending records are given up, so a write in flight does not pop others
        self.queued = 0  # records accepted, ever
        self.settled = 0  # of those: written or given up
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.episode_drops = 0  # dropped since the queue was last found full
        self.reported = 0  # dropped + failed already reported on standard error
        self.last_id: int | None = None

    # -- the callers' side (never waits for the database) ----------------------------------------
    def put(self, row: _Row) -> bool:
        with self.cond:
            if len(self.queue) >= self.capacity:
                self.dropped += 1
                self.episode_drops += 1
                return False
            self.queue.append(row)
            self.queued += 1
            self.stop_at = None  # a record after close(): the trail is in use again
            if self.thread is None:
                self._start()
            elif self.idle:
                self.cond.notify_all()
        return True

    def _start(self) -> None:  # with self.cond held

        _hook_exit()
        _PIPES.add(self)
        self.stop_at = None
        thread = threading.Thread(target=_write_loop, args=(self,), name=WRITER_NAME, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a limit, interpreter shutdown): the records stay
            return  # queued and the next record, flush() or close() tries again
        self.thread = thread

    def wait(self, deadline: float) -> bool:
        """Wait until every record accepted so far is settled, until ``deadline`` (monotonic);
        whether they all were, and written."""
        with self.cond:
            target, failed = self.queued, self.failed
            while self.settled < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self.thread is None and self.queue:
                    self._start()
                    if self.thread is None:
                        # No thread can start (Python 3.12+ refuses new threads once shutdown has
                        # begun, while atexit hooks still deliver): write here, within the deadline.
                        self._write_here()
                        continue
                self.cond.wait(left)
            return self.failed == failed

    def _write_here(self) -> None:  # with self.cond held (reentrant: _settle takes it again)
        """One batch written in the caller's thread, as the writer would (a refused record is
        counted as failed; a database error leaves the batch queued for the deadline to end)."""
        import logging  # at exit only, with no writer thread: logging stays out of `import alert_infra.audit`

        log = logging.getLogger("alert_infra.audit")
        batch = [self.queue[i] for i in range(min(BATCH_SIZE, len(self.queue)))]
        try:
            ids: list[int | None] = list(self.store._write_rows(batch, timeout=WRITE_ATTEMPT_TIMEOUT))
        except Exception as exc:  # noqa: BLE001 - as the writer: refused records alone, else wait
            ids = _write_each(self.store, batch, log)[0] if _is_data_error(exc) else []
            if not ids:
                self.cond.wait(0.05)
                return
        _settle(self, self.epoch, ids, log)

    def stop(self, delay: float) -> None:
        """Let the writer end once the queue is written, giving up what remains after ``delay`` s."""
        with self.cond:
            self.stop_at = time.monotonic() + delay
            self.cond.notify_all()

    def give_up(self) -> int:
        """Count what is still queued as failed and forget it; how many records that was."""
        with self.cond:
            lost = len(self.queue)
            if lost:
                self.queue.clear()
                self.failed += lost
                self.settled += lost
                self.epoch += 1
                self.cond.notify_all()
            return lost

    def report(self) -> None:
        """Say on standard error how many records were lost since the last report (none: silence)."""
        with self.cond:
            lost = self.dropped + self.failed
            if lost <= self.reported:
                return
            new, self.reported = lost - self.reported, lost
            dropped, failed = self.dropped, self.failed

        try:
            sys.stderr.write(
                f"alert-infra: the audit trail {self.store.path} lost {new} record(s); in all {dropped} dropped "
                f"(its queue of {self.capacity} was full) and {failed} given up (not written within the "
                "close or exit bound, or refused by the database)\n"
            )
        except Exception:  # noqa: BLE001, S110 - standard error closed: nothing more can be done
            pass


def _write_loop(pipe: _Pipe) -> None:
    """The writer thread: batches from the queue, one transaction each, retried with back-off."""
    # the writer thread only: logging and random stay out of the import
    import logging
    import random

    log = logging.getLogger("alert_infra.audit")
    me = threading.current_thread()
    delay = 0.0
    outage: float | None = None  # since when the database fails
    lost = 0
    try:
        while True:
            with pipe.cond:
                while not pipe.queue:
                    if pipe.stop_at is not None:
                        pipe.thread = None
                        return
                    pipe.idle = True
                    woken = pipe.cond.wait(IDLE_EXIT)
                    pipe.idle = False
                    if not woken and not pipe.queue:
                        pipe.thread = None  # idle: the next record starts a new writer
                        return
                if pipe.stop_at is not None and time.monotonic() >= pipe.stop_at:
                    lost = pipe.give_up()
                    pipe.thread = None
                    break
                batch = [pipe.queue[i] for i in range(min(BATCH_SIZE, len(pipe.queue)))]
                epoch, store = pipe.epoch, pipe.store
            error: Exception | None = None
            try:
                ids: list[int | None] = list(store._write_rows(batch, timeout=WRITE_ATTEMPT_TIMEOUT))
            except Exception as exc:  # noqa: BLE001 - the writer survives anything
                ids, error = _write_each(store, batch, log) if _is_data_error(exc) else ([], exc)
            if ids:
                if outage is not None and error is None:
                    log.warning("alert audit trail recovered after %.1f s", time.monotonic() - outage)
                    outage = None
                _settle(pipe, epoch, ids, log)
            if error is None:
                delay = 0.0
                continue
            if outage is None:
                outage = time.monotonic()
                log.warning(
                    "alert audit trail failed to record: %s (%d record(s) waiting; retrying)",
                    type(error).__name__,
                    len(pipe.queue),
                )
            delay = min(RETRY_MAX, max(RETRY_INITIAL, delay * 2))
            resume = time.monotonic() + delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto
            with pipe.cond:
                while True:
                    now = time.monotonic()
                    end = resume if pipe.stop_at is None else min(resume, pipe.stop_at)
                    if now >= end:
                        break
                    pipe.cond.wait(end - now)
    finally:
        with pipe.cond:
            if pipe.thread is me:  # an unexpected end: the next record starts a new writer
                pipe.thread = None
            pipe.cond.notify_all()
    if lost:
        pipe.report()


def _settle(pipe: _Pipe, epoch: int, ids: list[int | None], log: Any) -> None:
    """The first ``len(ids)`` queued records are done: written (their id) or refused (``None``)."""
    settled = 0
    with pipe.cond:
        if pipe.epoch == epoch:  # else: given up meanwhile (close, exit) and counted already
            for _ in ids:
                pipe.queue.popleft()
            settled = len(ids)
            pipe.failed += sum(1 for i in ids if i is None)
        written = [i for i in ids if i is not None]
        pipe.written += len(written)
        if written:
            pipe.last_id = written[-1]
        episode, pipe.episode_drops = pipe.episode_drops, 0
        if not episode:
            pipe.settled += settled
            pipe.cond.notify_all()
            return
    # The episode's count is logged before these records count as settled (so a flush() that
    # returns has seen it), but outside the lock: a logging handler never runs while it is held.
    log.warning("alert audit trail dropped %d record(s): its queue of %d was full", episode, pipe.capacity)
    with pipe.cond:
        pipe.settled += settled
        pipe.cond.notify_all()


def _write_each(store: AuditStore, batch: list[_Row], log: Any) -> tuple[list[int | None], Exception | None]:
    """A batch holding a record the database refuses: each record alone (``None`` for a refused one),
    up to the first error that is not the record's fault (returned, for the writer to retry)."""
    ids: list[int | None] = []
    for row in batch:
        try:
            ids.extend(store._write_rows([row], timeout=WRITE_ATTEMPT_TIMEOUT))
        except Exception as exc:  # noqa: BLE001 - returned or counted
            if not _is_data_error(exc):
                return ids, exc
            log.warning("alert audit trail failed to record: %s (record given up)", type(exc).__name__)
            ids.append(None)
    return ids, None


_PIPES: weakref.WeakSet[_Pipe] = weakref.WeakSet()  # the trails with a writer, for the atexit hook
_exit_hooked = False


def _hook_exit() -> None:
    """Register :func:`_flush_at_exit` once per process, when the first trail is made. ``atexit``
    runs its hooks last-registered first: registered with the trail (before the logging handler
    or the application that builds a dispatcher around it registers its own exit steps), the
    flush runs after them, so the records of what they deliver at exit are written too. (At the
    first write it ran before an ``AlertHandler``'s close and lost the records of its last
    deliveries.)"""
    global _exit_hooked
    if not _exit_hooked:
        atexit.register(_flush_at_exit)
        _exit_hooked = True


def _flush_at_exit() -> None:
    """At interpreter exit: give every live trail's writer :data:`EXIT_TIMEOUT` seconds in all, then
    count and report what is still pending (a short-lived process, the CLI, keeps its last records)."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    try:
        pipes = list(_PIPES)
    except RuntimeError:  # changed while copied (a thread started a writer): once more
        pipes = list(_PIPES)
    for pipe in pipes:
        pipe.wait(deadline)
    for pipe in pipes:
        pipe.give_up()
        pipe.report()


class AuditTrail:
    """The audit trail as an ``alert_infra_after_dispatch`` hook implementation.

    Give it to one dispatcher (``AlertDispatcher(..., audit=trail)``, which is
    what ``audit = "sqlite:///…"`` in configuration does), or register it as a
    plugin to audit every dispatcher of the process. The hook never waits for the
    database: it queues the record, and the trail's writer thread writes it (see the
    module's documentation for every bound). A failure to write is logged (class
    name only), retried, and never breaks delivery.

    Args:
        store: the database.
        max_pending: records kept waiting for the writer (default :data:`MAX_PENDING`);
            beyond, new records are dropped and counted in :attr:`dropped`.
        close_timeout: how long :meth:`close` (and a trail dropped without ``close()``)
            waits for pending records to be written, in seconds (default :data:`FLUSH_TIMEOUT`).
    """

    #: The hook returns in microseconds whatever the database does, so the dispatcher calls it in
    #: the caller's thread (also on the event loop) instead of handing it to a hook thread.
    nonblocking = True

    def __init__(
        self, store: AuditStore, *, max_pending: int = MAX_PENDING, close_timeout: float = FLUSH_TIMEOUT
    ) -> None:
        capacity = check_count(max_pending, "audit max_pending", error=AlertConfigurationError)
        bound = check_seconds(close_timeout, "audit close_timeout", zero=True, error=AlertConfigurationError)
        self.store = store
        self._pipe = _Pipe(store, capacity, bound)
        # Dropped without close(): the writer writes what is queued (within close_timeout) and ends.
        self._finalizer = weakref.finalize(self, self._pipe.stop, bound)
        self._finalizer.atexit = False  # at exit, _flush_at_exit does it with its own bound

    @hookimpl
    def alert_infra_after_dispatch(self, alert: Alert, result: DeliveryResult) -> None:
        """Queue the record of this dispatch and return at once."""
        if not result.outcomes:  # nothing selected: dispatch disabled, or no channel
            return
        try:
            row = _build_row(alert, result, None)
        except Exception as exc:  # noqa: BLE001 - counted, logged (class name only), never raised into delivery
            with self._pipe.cond:
                self._pipe.failed += 1
            import logging  # a dropped record only: logging stays out of the import

            logging.getLogger("alert_infra.audit").warning(
                "alert audit trail failed to record: %s (record given up)", type(exc).__name__
            )
            return
        self._pipe.put(row)

    # -- what happened ---------------------------------------------------------------------------
    @property
    def last_id(self) -> int | None:
        """The id of the last record the writer wrote (``None`` before the first); :meth:`flush`
        first to be sure it is the record of the last dispatch."""
        return self._pipe.last_id

    @property
    def pending(self) -> int:
        """Records queued, not yet written."""
        return len(self._pipe.queue)

    @property
    def written(self) -> int:
        return self._pipe.written

    @property
    def dropped(self) -> int:
        """Records refused because the queue was full."""
        return self._pipe.dropped

    @property
    def failed(self) -> int:
        """Records given up: not written within a flush bound of close/exit, or refused by the database."""
        return self._pipe.failed

    def stats(self) -> dict[str, int]:
        """``pending``, ``written``, ``dropped`` and ``failed`` at once."""
        pipe = self._pipe
        with pipe.cond:
            return {"pending": len(pipe.queue), "written": pipe.written, "dropped": pipe.dropped, "failed": pipe.failed}

    # -- lifecycle -------------------------------------------------------------------------------
    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait at most ``timeout`` seconds until every record queued so far is written; whether
        they all were. Records that miss the bound stay queued."""
        bound = check_seconds(timeout, "flush timeout", zero=True)
        return self._pipe.wait(time.monotonic() + bound)

    def close(self) -> None:
        """Flush (at most ``close_timeout`` seconds), stop the writer, close the store. Records
        still pending then are given up: counted in :attr:`failed` and reported on standard
        error. The trail stays usable: a later record starts a new writer."""
        pipe = self._pipe
        pipe.wait(time.monotonic() + pipe.close_timeout)
        pipe.stop(0.0)
        thread = pipe.thread
        if thread is not None:  # it ends after its current attempt, at most one attempt's wait
            thread.join(WRITE_ATTEMPT_TIMEOUT + 1.0)
        pipe.give_up()
        pipe.report()
        self.store.close()

    @guarded_repr
    def __repr__(self) -> str:
        return f"AuditTrail({self.store!r})"


def open_audit(spec: Any, *, retention: int | None = DEFAULT_RETENTION) -> AuditTrail:
    """An :class:`AuditTrail` from a setting: a ``sqlite:///`` URL, a path, a store or a trail."""
    if isinstance(spec, AuditTrail):
        return spec
    if isinstance(spec, AuditStore):
        return AuditTrail(spec)
    if isinstance(spec, str) and spec.startswith("sqlite:"):
        return AuditTrail(AuditStore(path_from_url(spec), retention=retention))
    if isinstance(spec, (str, os.PathLike)):
        return AuditTrail(AuditStore(os.fspath(spec), retention=retention))

    raise AlertConfigurationError(f"audit: expected a sqlite:/// URL or a path, got {type(spec).__name__}")
