"""The spool worker's batches and what ``alert-infra worker --once`` delivers (issue 21): real
``alert-infra worker`` processes, real SQLite files, a real lock held by another process, an HTTPS
provider fake.

Before: a ``--once`` run whose first claim met the spool locked past its 1 s busy timeout took
the failed claim for "nothing due" and exited 0 with every row left (``0 delivered``); a row
leased by a worker of another machine that stopped renewing it was left to the next run even
when its lease ended two seconds later.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.queued.spool import Spool
from alert_infra.testing import https_server

LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # the write lock, as a long writer would hold it
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    """
)


def _alert(n: int) -> Alert:
    return Alert(f"A{n:05d}Z disk full", "Volume /data is at 99%.", "critical", source="db-1")


def _spool(config: Path, count: int) -> None:
    with AlertDispatcher.from_config(str(config)) as dispatcher:
        for n in range(count):
            assert dispatcher.send(_alert(n)).sent == ("spool",)


def _console(folder: Path) -> Path:
    config = folder / "alert-infra.toml"
    spool = folder / "spool.sqlite3"
    lines = ["[alert_infra]", 'delivery = "spool"', f'spool = "sqlite:///{spool}"']
    lines += ["", "[channels.one]", 'type = "console"']
    config.write_text("\n".join(lines) + "\n")
    return config


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0])


def _lock(tmp_path: Path, seconds: float, kit: Any) -> subprocess.Popen[str]:
    script = tmp_path / "locker.py"
    script.write_text(LOCKER)
    locker = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "spool.sqlite3"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env=kit.env(),
    )
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    return locker


def _once(config: Path, ca_file: str, kit: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alert_infra", "worker", "--once", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=kit.env(ca_file),
    )


def test_once_waits_out_a_spool_locked_past_its_busy_timeout(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"})
        _spool(config, 20)
        locker = _lock(tmp_path, 2.5, kit)  # longer than the 1 s busy timeout of a claim
        try:
            done = _once(config, server.ca_file, kit)
        finally:
            assert locker.wait(30) == 0
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("20 delivered"), done.stdout + done.stderr
        assert sink.titles("/a") == {f"A{n:05d}Z": 1 for n in range(20)}
    assert _rows(tmp_path / "spool.sqlite3") == 0


@pytest.mark.slow  # the run tries a locked spool for 10 s before it gives up
def test_once_gives_up_on_a_spool_locked_for_good_exits_1_and_leaves_every_row(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"})
        _spool(config, 3)
        locker = _lock(tmp_path, 20, kit)
        try:
            started = time.monotonic()
            done = _once(config, server.ca_file, kit)
            took = time.monotonic() - started
        finally:
            locker.send_signal(signal.SIGTERM)
            locker.wait(30)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout.startswith("0 delivered"), done.stdout
        assert "the spool could not be read: what is due is left for the next run" in done.stdout, done.stdout
        assert took < 19  # gave up on its own bound, not when the lock went away
        assert not sink.titles("/a")
    assert _rows(tmp_path / "spool.sqlite3") == 3
    # the next run delivers them
    with https_server(sink) as server:
        kit.write_config(tmp_path, {"one": f"{server.url}/a"})
        done = _once(config, server.ca_file, kit)
        assert done.returncode == 0 and done.stdout.startswith("3 delivered"), done.stdout + done.stderr
    assert _rows(tmp_path / "spool.sqlite3") == 0


def test_once_waits_for_a_lease_another_machine_stopped_renewing_and_leaves_a_renewed_one(
    tmp_path: Path, kit: Any
) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"})
        _spool(config, 3)
        now = time.time()
        with sqlite3.connect(tmp_path / "spool.sqlite3") as conn:
            # row 1: its holder elsewhere stopped renewing (2 s left of a 30 s lease); row 2: renewed
            # a moment ago (a live worker there delivers it); row 3: free
            conn.executemany(
                "UPDATE spool SET lease_until = ?, holder_pid = 4242, holder_host = 'elsewhere', starts = 1 "
                "WHERE id = ?",
                [(now + 2, 1), (now + 29, 2)],
            )
        started = time.monotonic()
        done = _once(config, server.ca_file, kit)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("2 delivered"), done.stdout + done.stderr
        assert sink.titles("/a") == {"A00000Z": 1, "A00002Z": 1}
        assert took < 25  # did not wait for the renewed lease
    with sqlite3.connect(tmp_path / "spool.sqlite3") as conn:
        assert conn.execute("SELECT id FROM spool").fetchall() == [(2,)]


def test_a_batch_settles_all_or_nothing_and_never_deletes_a_row_without_its_records(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    _spool(_console(tmp_path), 3)
    spool = Spool(str(path))
    rows = spool.claim(10)
    assert [row.id for row in rows] == [1, 2, 3] and all(row.starts == 1 for row in rows)  # one batch
    with sqlite3.connect(path) as conn:  # the delete of row 3 fails inside the transaction
        conn.execute("CREATE TRIGGER no_3 BEFORE DELETE ON spool WHEN old.id = 3 BEGIN SELECT RAISE(ABORT, 'no'); END")
    keys = [(f"delivered:{row.alert_id}:one", 60.0) for row in rows]
    with pytest.raises(sqlite3.DatabaseError):
        spool.settle(records=keys, done=[1, 2, 3])
    assert spool.delivered([key for key, _ in keys]) == []  # no record without its delete, and
    assert _rows(path) == 3  # no delete without its record
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER no_3")
    spool.settle(records=keys, done=[1, 2], retry=[(3, ["one"], 60.0, 2)])
    assert sorted(spool.delivered([key for key, _ in keys])) == sorted(key for key, _ in keys)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, attempt, lease_until, starts FROM spool").fetchall() == [(3, 2, 0, 0)]
    spool.close()


def test_a_row_leased_at_a_kill_is_claimed_alone_after_it(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    _spool(_console(tmp_path), 4)
    spool = Spool(str(path), lease=1.0)
    assert [row.id for row in spool.claim(10)] == [1, 2, 3, 4]
    # the holder is killed: its leases end; each row has a start on record, so each is claimed alone
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE spool SET lease_until = 0")
    assert [(row.id, row.starts) for row in spool.claim(10)] == [(1, 2)]
    assert [(row.id, row.starts) for row in spool.claim(10)] == [(2, 2)]
    spool.close()


class TurnsSlow:
    """An HTTPS fake that answers the first ``fast`` alerts at once and the others after ``delay``."""

    def __init__(self, sink: Any, fast: int, delay: float) -> None:
        self.sink, self.fast, self.delay = sink, fast, delay

    def __call__(self, request: Any) -> tuple[int, dict[str, str], str]:
        answer = self.sink(request)
        if sum(self.sink.titles("/a").values()) > self.fast:
            time.sleep(self.delay)
        return answer


def test_a_batch_whose_deliveries_turn_slow_gives_back_the_rows_it_has_not_started(tmp_path: Path, kit: Any) -> None:
    provider = TurnsSlow(kit.Sink(), fast=30, delay=0.5)
    with https_server(provider) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"})
        _spool(config, 100)
        worker = kit.start_worker(config, server.ca_file)
        try:
            kit.wait_for(lambda: sum(provider.sink.titles("/a").values()) > 31, timeout=60, what="the slow answers")

            def held() -> int:
                with sqlite3.connect(tmp_path / "spool.sqlite3") as conn:
                    return int(
                        conn.execute(
                            "SELECT COUNT(*) FROM spool WHERE holder_pid = ? AND lease_until > ?",
                            (worker.pid, time.time()),
                        ).fetchone()[0]
                    )

            # a batch sized by the fast answers (up to 64 rows) is given back once it has run for
            # BATCH_HOLD (1 s); the next claims take one row at a time (held for ~30 s before)
            kit.wait_for(lambda: held() <= 1, timeout=15, what="the unstarted rows given back")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
    titles = provider.sink.titles("/a")
    assert set(titles.values()) == {1}  # none twice
    assert _rows(tmp_path / "spool.sqlite3") == 100 - len(titles)  # the rest still spooled
