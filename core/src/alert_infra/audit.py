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
"""

from __future__ import annotations

import json
import os
import time
from _thread import allocate_lock
from contextlib import contextmanager

from .hookspecs import hookimpl

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~5 ms
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Iterator
    from typing import Any

    from .alert import Alert
    from .result import DeliveryResult

__all__ = ["AuditRecord", "AuditStore", "AuditTrail", "default_audit_path", "open_audit", "path_from_url"]

#: The schema version written to ``PRAGMA user_version``; a newer file is refused.
SCHEMA_VERSION = 1
DEFAULT_RETENTION = 10_000

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
    ack_note TEXT
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
    PRIMARY KEY (alert_id, position)
);
CREATE INDEX IF NOT EXISTS outcomes_channel ON outcomes (channel, status);
"""


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
    from .exceptions import AlertConfigurationError

    path = url[len("sqlite://") :] if isinstance(url, str) and url.startswith("sqlite:///") else "/"
    if path == "/":
        raise AlertConfigurationError('audit: must be a sqlite:/// URL, such as "sqlite:///var/lib/app/alerts.sqlite3"')
    if path.startswith("/~"):
        path = os.path.expanduser(path[1:])
    return path


class AuditRecord:
    """One audited alert: what was sent, when, to which channels, with what outcome.

    ``outcome`` sums the dispatch up: ``sent`` (every asked channel delivered),
    ``failed`` (at least one failed), ``partial`` (some delivered, some failed),
    ``suppressed`` (nothing was asked: all skipped) or ``empty``.
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
        self.channels = channels

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (``alert-infra history --json``)."""
        return {slot: getattr(self, slot) for slot in self.__slots__} | {"acknowledged": self.acknowledged}

    def __repr__(self) -> str:
        return f"AuditRecord(id={self.id}, severity={self.severity!r}, title={self.title!r}, outcome={self.outcome!r})"


def _summary(result: DeliveryResult) -> str:
    asked = [o for o in result.outcomes if o.status != "skipped"]
    if not result.outcomes:
        return "empty"
    if not asked:
        return "suppressed"
    if not result.failed:
        return "sent"
    return "partial" if result.sent else "failed"


class AuditStore:
    """A SQLite audit store, safe for several threads and processes writing at once.

    Args:
        path: the database file (its folder is created). ``":memory:"`` for tests.
        retention: keep at most this many alerts; older ones are removed as new
            ones arrive (default 10,000; ``None`` keeps everything).
        timeout: how long a writer waits for another process's lock, in seconds.
    """

    def __init__(self, path: str, *, retention: int | None = DEFAULT_RETENTION, timeout: float = 10.0) -> None:
        from .exceptions import AlertConfigurationError

        if retention is not None and (isinstance(retention, bool) or not isinstance(retention, int) or retention < 1):
            raise AlertConfigurationError(f"audit_retention: must be a positive whole number, got {retention!r}")
        self.path = path
        self.retention = retention
        self._timeout = timeout
        self._lock = allocate_lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._writes = 0

    # -- connection ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None and self._pid == os.getpid():
            return conn
        # First use, or a forked child (a pre-forking web server): a SQLite connection must never
        # be shared across fork; the child opens its own and leaves the parent's alone.
        import sqlite3

        from .exceptions import AlertConfigurationError

        if self.path != ":memory:":
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._timeout, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise AlertConfigurationError(
                f"audit: {self.path} has schema version {version}; this alert-infra reads up to {SCHEMA_VERSION} "
                "(upgrade alert-infra)"
            )
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")  # one process creates the schema; the others wait, then see it
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn
        self._pid = os.getpid()
        return conn

    # -- writing ------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``BEGIN IMMEDIATE`` takes the write lock up front, so two
        processes never both read, then both try to upgrade (SQLite's deadlock case)."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def record(self, alert: Alert, result: DeliveryResult, *, at: float | None = None) -> int:
        """Store the (redacted) ``alert`` and the per-channel outcomes of ``result``; its id."""
        safe = alert.redacted()  # always: an alert sent with redaction off is still stored redacted
        metadata = json.dumps(dict(safe.metadata), default=str, sort_keys=True)
        row = (
            at if at is not None else time.time(),
            safe.title,
            safe.message,
            safe.severity,
            safe.severity_rank,
            safe.source,
            json.dumps(list(safe.tags)),
            metadata,
            safe.fingerprint,
            safe.status,
            _summary(result),
        )
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO alerts (created_at, title, message, severity, severity_rank, source, tags, "
                "metadata, fingerprint, alert_status, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            alert_id = int(cursor.lastrowid or 0)
            conn.executemany(
                "INSERT INTO outcomes (alert_id, position, channel, status, suppressed_by, attempts, elapsed, "
                "error, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        alert_id,
                        position,
                        o.name,
                        o.status,
                        o.suppressed_by,
                        o.attempts,
                        float(o.elapsed),
                        o.error,
                        o.reason,
                        o.detail,
                    )
                    for position, o in enumerate(result.outcomes)
                ],
            )
            self._writes += 1
            if self._writes % 100 == 1:  # retention is enforced every 100 writes of a process
                self._prune(conn)
        return alert_id

    def acknowledge(self, alert_id: int, *, by: str, note: str | None = None, at: float | None = None) -> AuditRecord:
        """Mark an alert acknowledged by ``by``; a second acknowledgement keeps the first.

        Raises:
            AlertInfraError: no alert has that id (it may have passed the retention limit).
        """
        from .exceptions import AlertInfraError

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
        with self._lock:
            return self._prune(self._connect())

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
        limit: int = 50,
    ) -> list[AuditRecord]:
        """The newest alerts first, filtered.

        Args:
            since, until: UNIX times bounding ``created_at``.
            min_severity: this severity or higher.
            source: exactly this source.
            channel: alerts that involved this channel.
            status: with ``channel``, that channel's outcome status (``sent``,
                ``failed``, ``skipped``); without it, the alert's summary
                (``sent``, ``failed``, ``partial``, ``suppressed``).
            acknowledged: only acknowledged (True) or unacknowledged (False) alerts.
        """
        from .alert import severity_rank

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
        if channel is not None:
            clause = "EXISTS (SELECT 1 FROM outcomes o WHERE o.alert_id = a.id AND o.channel = ?"
            args.append(channel)
            if status is not None:
                clause += " AND o.status = ?"
                args.append(status)
            where.append(clause + ")")
        elif status is not None:
            where.append("a.outcome = ?")
            args.append(status)
        if acknowledged is not None:
            where.append("a.acknowledged_at IS NOT NULL" if acknowledged else "a.acknowledged_at IS NULL")
        if ids is not None:
            wanted = [int(i) for i in ids]
            where.append(f"a.id IN ({', '.join('?' * len(wanted)) or 'NULL'})")
            args.extend(wanted)
        sql = "SELECT * FROM alerts a"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.id DESC LIMIT ?"
        args.append(max(0, int(limit)))
        with self._lock:
            conn = self._connect()
            rows = conn.execute(sql, args).fetchall()
            channels: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
            if rows:
                marks = ", ".join("?" * len(rows))
                for o in conn.execute(
                    f"SELECT * FROM outcomes WHERE alert_id IN ({marks}) ORDER BY alert_id, position",  # noqa: S608
                    [row["id"] for row in rows],
                ):
                    channels[o["alert_id"]].append(
                        {k: o[k] for k in o.keys() if k not in ("alert_id", "position")}  # noqa: SIM118
                    )
        return [AuditRecord(row, channels[row["id"]]) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        return f"AuditStore({self.path!r})"


class AuditTrail:
    """The audit trail as an ``alert_infra_after_dispatch`` hook implementation.

    Give it to one dispatcher (``AlertDispatcher(..., audit=trail)``, which is
    what ``audit = "sqlite:///…"`` in configuration does), or register it as a
    plugin to audit every dispatcher of the process. A failure to write is
    logged (class name only) and never breaks delivery.
    """

    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self.last_id: int | None = None

    @hookimpl
    def alert_infra_after_dispatch(self, alert: Alert, result: DeliveryResult) -> None:
        if not result.outcomes:  # nothing selected: dispatch disabled, or no channel
            return
        self.last_id = self.store.record(alert, result)

    def close(self) -> None:
        self.store.close()

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
    from .exceptions import AlertConfigurationError

    raise AlertConfigurationError(f"audit: expected a sqlite:/// URL or a path, got {type(spec).__name__}")
