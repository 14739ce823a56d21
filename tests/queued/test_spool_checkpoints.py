"""Who checkpoints the spool's WAL: the workers, so that a ``send()`` in a request's thread does
not pay a checkpoint (a copy of the WAL into the file and a sync of both) every few hundred
alerts; and the sender itself past a bound, so that with no worker running the WAL never grows
without one."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from alert_infra.queued.sender import open_spool
from alert_infra.queued.settings import SpoolSettings
from alert_infra.queued.spool import SENDER_CHECKPOINT_PAGES, WORKER_CHECKPOINT_PAGES, Spool


def _settings(path: Path) -> SpoolSettings:
    return SpoolSettings(str(path))


def _autocheckpoint(spool: Spool) -> int:
    return int(spool._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def test_the_sender_leaves_checkpoints_to_the_workers(tmp_path: Path) -> None:
    sender = open_spool(_settings(tmp_path / "spool.sqlite3"), sender=True)
    worker = open_spool(_settings(tmp_path / "spool.sqlite3"))
    try:
        assert _autocheckpoint(sender) == SENDER_CHECKPOINT_PAGES > WORKER_CHECKPOINT_PAGES
        assert _autocheckpoint(worker) == WORKER_CHECKPOINT_PAGES
    finally:
        sender.close()
        worker.close()


def test_with_no_worker_the_sender_still_bounds_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    sender = Spool(str(path), checkpoint_pages=64)  # the sender's rule, on a small scale
    body = '{"alert":{"title":"' + "x" * 3000 + '"},"options":{}}'  # about a page per row
    try:
        for n in range(400):
            sender.put_row(f"a{n}", body, None)
        wal = os.path.getsize(f"{path}-wal")
        page = int(sender._conn().execute("PRAGMA page_size").fetchone()[0])
        # 400 commits of a page or more each: without a checkpoint the WAL would hold them all.
        assert wal < 200 * page
    finally:
        sender.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0] == 400  # nothing lost to a checkpoint


def test_the_spool_s_detail_is_kept_as_written_and_a_transport_s_is_redacted(tmp_path: Path) -> None:
    from alert_infra import Alert, AlertDispatcher
    from alert_infra.queued.sender import SpoolDispatcher
    from alert_infra.result import PlainDetail
    from alert_infra.security import REDACTED, register_secret

    secret = "s3cr3t-detail-token-0123456789"
    register_secret(secret)

    class Chatty:
        name = "chatty"
        blocking = False

        def send(self, alert: Alert) -> str:
            return f"provider said {secret}"

    with AlertDispatcher([Chatty()]) as dispatcher:
        outcome = dispatcher.send(Alert("t", "m")).outcome("chatty")
    assert outcome is not None and outcome.detail == f"provider said {REDACTED}"
    with SpoolDispatcher(Spool(str(tmp_path / "spool.sqlite3"))) as spool:
        outcome = spool.send(Alert("t", "m")).outcome("spool")
    assert outcome is not None and outcome.detail is not None and type(outcome.detail) is str
    assert outcome.detail.startswith("queued as task ") and outcome.detail.endswith("(spool row 1)")
    assert not isinstance(outcome.detail, PlainDetail)  # a plain str in results and the audit
