"""The SQLite audit trail: records, queries, acknowledgement, retention, several writers, wiring."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from alert_infra import (
    Alert,
    AlertConfigurationError,
    AlertDispatcher,
    AlertInfraError,
    RetryableAlertTransportError,
    load_config,
    register_plugin,
)
from alert_infra.audit import SCHEMA_VERSION, AuditStore, AuditTrail, default_audit_path, open_audit
from alert_infra.dispatcher import Route
from alert_infra.testing import RecordingTransport

SECRET = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


def dispatch(store: AuditStore, *alerts: Alert) -> list[int]:
    ok = RecordingTransport(name="ops")
    bad = RecordingTransport(name="pager", fail_with=RetryableAlertTransportError("HTTP 503"))
    trail = AuditTrail(store)
    dispatcher = AlertDispatcher([ok, bad], routes={"pager": Route(min_severity="critical")}, audit=trail)
    ids = []
    for alert in alerts:
        dispatcher.send(alert)
        assert trail.flush(timeout=10)  # the trail writes from its own thread: wait (bounded) for it
        assert trail.last_id is not None
        ids.append(trail.last_id)
    return ids


def test_every_dispatch_is_recorded_with_each_channels_outcome(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "audit.sqlite3"))
    [first, second] = dispatch(
        store,
        Alert("Disk full", "/var at 97%", "warning", source="db", tags=("db",), metadata={"host": "db1"}),
        Alert("Payments down", "5 failures", "critical", source="billing"),
    )
    records = store.query()
    assert [r.id for r in records] == [second, first]  # newest first
    payments, disk = records
    assert disk.title == "Disk full" and disk.severity == "warning" and disk.tags == ["db"]
    assert disk.metadata == {"host": "db1"} and disk.outcome == "sent"
    assert [(c["channel"], c["status"], c["suppressed_by"]) for c in disk.channels] == [
        ("ops", "sent", None),
        ("pager", "skipped", "routing"),
    ]
    assert payments.outcome == "partial"
    assert payments.channels[1]["error"] == "RetryableAlertTransportError"
    assert payments.channels[1]["reason"] == "HTTP 503"
    json.dumps([r.to_dict() for r in records])  # the CLI's --json form


def test_queries_filter_by_time_severity_source_channel_and_status(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "a.db"))
    dispatch(
        store,
        Alert("a", "m", "info", source="web"),
        Alert("b", "m", "critical", source="billing"),
        Alert("c", "m", "error", source="web"),
    )
    assert [r.title for r in store.query(min_severity="error")] == ["c", "b"]
    assert [r.title for r in store.query(source="web")] == ["c", "a"]
    assert [r.title for r in store.query(channel="pager", status="failed")] == ["b"]
    assert [r.title for r in store.query(channel="pager", status="skipped")] == ["c", "a"]
    assert [r.title for r in store.query(status="partial")] == ["b"]
    assert [r.title for r in store.query(limit=1)] == ["c"]
    assert store.query(since=time.time() + 60) == []
    assert len(store.query(since=time.time() - 60, until=time.time() + 1)) == 3


def test_acknowledge_round_trip_keeps_the_first(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "a.db"))
    [alert_id] = dispatch(store, Alert("Disk full", "m"))
    assert [r.id for r in store.query(acknowledged=False)] == [alert_id]
    record = store.acknowledge(alert_id, by="dana", note="on it", at=1000.0)
    assert (record.acknowledged, record.acknowledged_by, record.ack_note, record.acknowledged_at) == (
        True,
        "dana",
        "on it",
        1000.0,
    )
    again = store.acknowledge(alert_id, by="eve", at=2000.0)
    assert again.acknowledged_by == "dana" and again.acknowledged_at == 1000.0
    assert store.query(acknowledged=False) == []
    with pytest.raises(AlertInfraError, match="no alert with id 999"):
        store.acknowledge(999, by="dana")


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "a.db"), retention=5)
    ids = dispatch(store, *[Alert(f"a{i}", "m") for i in range(12)])
    store.prune()
    assert [r.id for r in store.query(limit=100)] == ids[::-1][:5]
    with sqlite3.connect(tmp_path / "a.db") as raw:  # outcomes of removed alerts go with them
        assert raw.execute("SELECT COUNT(DISTINCT alert_id) FROM outcomes").fetchone()[0] == 5


def test_nothing_secret_is_stored(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "a.db"))
    dispatch(
        store,
        Alert(
            "Charge failed",
            f"provider said: bad key {SECRET}",
            metadata={"api_key": SECRET, "note": f"Authorization: Bearer {SECRET}"},
            redact_sensitive_data=False,  # even an alert sent unredacted is stored redacted
        ),
    )
    raw = (tmp_path / "a.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("a.db-*"))
    assert SECRET.encode() not in raw
    assert store.count() == 1 and "[REDACTED]" in store.query()[0].message


def test_schema_is_versioned_and_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    AuditStore(str(path)).count()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(AlertConfigurationError, match="upgrade alert-infra"):
        AuditStore(str(path)).count()


#: The schema exactly as version 3 wrote it (alert-infra before the correlation id was kept),
#: with one firing alert and its outcome.
_V3 = """
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, title TEXT NOT NULL, message TEXT NOT NULL,
    severity TEXT NOT NULL, severity_rank INTEGER NOT NULL, source TEXT, tags TEXT NOT NULL, metadata TEXT NOT NULL,
    fingerprint TEXT NOT NULL, alert_status TEXT NOT NULL, outcome TEXT NOT NULL, acknowledged_at REAL,
    acknowledged_by TEXT, ack_note TEXT, delivery_id TEXT
);
CREATE INDEX alerts_created ON alerts (created_at);
CREATE INDEX alerts_fingerprint ON alerts (fingerprint);
CREATE TABLE outcomes (
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE, position INTEGER NOT NULL,
    channel TEXT NOT NULL, status TEXT NOT NULL, suppressed_by TEXT, attempts INTEGER NOT NULL, elapsed REAL NOT NULL,
    error TEXT, reason TEXT, detail TEXT, failure_class TEXT, PRIMARY KEY (alert_id, position)
);
CREATE INDEX outcomes_channel ON outcomes (channel, status);
CREATE INDEX alerts_delivery ON alerts (delivery_id);
INSERT INTO alerts (created_at, title, message, severity, severity_rank, tags, metadata, fingerprint, alert_status,
    outcome) VALUES (1.0, 'old', 'kept', 'error', 2, '[]', '{}', 'f0', 'firing', 'sent');
INSERT INTO outcomes (alert_id, position, channel, status, attempts, elapsed) VALUES (1, 0, 'ops', 'sent', 1, 0.1);
PRAGMA user_version = 3;
"""


def test_a_version_3_file_is_upgraded_in_place_and_keeps_correlation_ids_from_then_on(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with sqlite3.connect(path) as raw:
        raw.executescript(_V3)
    store = AuditStore(str(path))
    try:
        (old,) = store.query()
        assert old.title == "old" and old.correlation_id is None and old.to_dict()["correlation_id"] is None
        assert [c["channel"] for c in old.channels] == ["ops"]
        [new] = dispatch(store, Alert("new", "m", correlation_id="req-7f3a"))
        record = store.get(new)
        assert record is not None and record.correlation_id == "req-7f3a"
        assert [r.correlation_id for r in store.query(fingerprint="f0")] == [None]  # the old row is untouched
    finally:
        store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        columns = [row[1] for row in raw.execute("PRAGMA table_info(alerts)")]
        assert columns[-1] == "correlation_id"


def test_the_correlation_id_is_stored_redacted(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "a.db"))
    try:
        store.record(Alert("t", "m", correlation_id=f"token={SECRET}"), _one_sent())
        (record,) = store.query()
    finally:
        store.close()
    assert record.correlation_id is not None and SECRET not in record.correlation_id


def _one_sent() -> object:
    from alert_infra.result import ChannelOutcome, DeliveryResult

    return DeliveryResult.from_outcomes([ChannelOutcome("ops", "sent", attempts=1)])


_WRITER = textwrap.dedent(
    """
    import sys, time
    from alert_infra import Alert, AlertDispatcher, NoOpTransport
    from alert_infra.audit import AuditStore, AuditTrail

    path, n, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    trail = AuditTrail(AuditStore(path, retention=None))
    dispatcher = AlertDispatcher([NoOpTransport()], audit=trail)
    while time.time() < start_at:
        time.sleep(0.001)
    for i in range(100):
        dispatcher.send(Alert(f"writer {n} alert {i}", "m"))
    assert trail.flush(timeout=60), trail.stats()
    """
)


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    path = tmp_path / "shared.sqlite3"
    start_at = time.time() + 1.5
    writers = [
        subprocess.Popen([sys.executable, str(script), str(path), str(n), str(start_at)], stderr=subprocess.PIPE)
        for n in range(4)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    store = AuditStore(str(path), retention=None)
    records = store.query(limit=1000)
    assert len(records) == 400
    assert len({r.id for r in records}) == 400
    assert all(len(r.channels) == 1 for r in records)
    for n in range(4):  # each writer's alerts in its own order
        mine = [r for r in reversed(records) if r.title.startswith(f"writer {n} ")]
        assert [r.title for r in mine] == [f"writer {n} alert {i}" for i in range(100)]


def test_configured_audit_records_dispatches(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "audit.sqlite3"
    dispatcher = AlertDispatcher.from_config(
        {"alert_infra": {"audit": f"sqlite:///{path}", "audit_retention": 50}, "channels": {"ops": {"type": "noop"}}}
    )
    dispatcher.send(Alert("Queue backlog", "10,000 jobs"))
    dispatcher.close()
    store = AuditStore(str(path))
    assert [r.title for r in store.query()] == ["Queue backlog"]
    assert dispatcher.audit.store.retention == 50


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"audit": "postgres://x"}, "alert_infra.audit: must be a sqlite:/// URL"),
        ({"audit": "sqlite:///"}, "alert_infra.audit: must be a sqlite:/// URL"),
        ({"audit": "sqlite:///x.db", "audit_retention": 0}, "alert_infra.audit_retention"),
    ],
)
def test_bad_audit_settings_are_named(settings: dict, fragment: str) -> None:
    with pytest.raises(AlertConfigurationError, match=fragment):
        load_config({"alert_infra": settings, "channels": {"ops": {"type": "noop"}}})


def test_a_broken_audit_store_never_breaks_delivery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    ops = RecordingTransport(name="ops")
    trail = open_audit(str(blocker / "audit.sqlite3"))
    dispatcher = AlertDispatcher([ops], audit=trail)
    result = dispatcher.send(Alert("Disk full", "m"))
    assert result.sent == ("ops",) and len(ops.alerts) == 1
    assert not trail.flush(timeout=1.0)  # still failing: the record stays queued, retried
    assert "alert audit trail failed to record: " in caplog.text
    assert trail.stats()["pending"] == 1
    trail.close()  # the bound passes: the record is given up, counted and reported on standard error
    assert trail.stats() == {"pending": 0, "written": 0, "dropped": 0, "failed": 1}
    assert "lost 1 record(s)" in capsys.readouterr().err


def test_asend_records_off_the_event_loop(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "a.db"))
    dispatcher = AlertDispatcher([RecordingTransport(name="ops")], audit=AuditTrail(store))
    trail = dispatcher.audit
    asyncio.run(dispatcher.asend(Alert("Async alert", "m")))
    assert trail.flush(timeout=10)
    assert [r.title for r in store.query()] == ["Async alert"]


def test_the_trail_works_as_a_process_wide_plugin(tmp_path: Path, host) -> None:
    store = AuditStore(str(tmp_path / "a.db"))
    trail = AuditTrail(store)
    register_plugin(trail, name="audit")
    AlertDispatcher([RecordingTransport(name="one")]).send(Alert("first", "m"))
    AlertDispatcher([RecordingTransport(name="two")]).send(Alert("second", "m"))
    assert trail.flush(timeout=10)
    assert [r.title for r in store.query()] == ["second", "first"]


def test_default_path_follows_xdg_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_audit_path() == str(tmp_path / "alert-infra" / "audit.sqlite3")
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_audit_path().endswith(str(Path(".local") / "state" / "alert-infra" / "audit.sqlite3"))


def test_audit_writes_never_log_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = AuditStore(str(tmp_path / "a.db"))
    dispatch(store, Alert("x", f"token={SECRET}", metadata={"password": SECRET}))
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps([r.to_dict() for r in store.query()])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    store = AuditStore(str(tmp_path / "a.db"))
    dispatch(store, Alert("parent before fork", "m"))
    parent_connection = store._conn
    import warnings

    with warnings.catch_warnings():  # 3.12+ warns about forking a threaded process; the child uses no thread
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: write through the inherited store, then leave without cleanup
        code = 0
        try:
            dispatch(store, Alert("from the child", "m"))
            if store._conn is parent_connection:  # the parent's connection must stay the parent's
                code = 2
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    dispatch(store, Alert("parent after fork", "m"))
    assert [r.title for r in store.query()] == ["parent after fork", "from the child", "parent before fork"]


@pytest.mark.parametrize("url", ["sqlite://relative.db", "sqlite:///"])
def test_open_audit_applies_the_same_url_rule_as_configuration(url: str) -> None:
    # (open_audit also takes a plain path, so only sqlite: URLs are compared)
    with pytest.raises(AlertConfigurationError, match=r"^audit: must be a sqlite:/// URL"):
        open_audit(url)
    with pytest.raises(AlertConfigurationError, match=r"alert_infra\.audit: must be a sqlite:/// URL"):
        load_config({"alert_infra": {"audit": url}, "channels": {"ops": {"type": "noop"}}})
