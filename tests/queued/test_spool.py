"""The local spool end to end: real SQLite, real ``alert-infra worker`` processes, real SIGKILL,
an HTTPS provider fake (issue 21)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from alert_infra import Alert, AlertDispatcher
from alert_infra.cli import main
from alert_infra.config import load_config
from alert_infra.queued.spool import MAX_STARTS, Spool
from alert_infra.queued.worker import SpoolWorker
from alert_infra.testing import https_server


def _alert(n: int) -> Alert:
    return Alert(f"A{n:05d}Z disk full", "Volume /data is at 99%.", "critical", source="db-1")


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0])


def test_send_commits_to_the_spool_and_one_worker_run_delivers_every_channel(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a", "two": f"{server.url}/b"})
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            result = dispatcher.send(_alert(1))
            assert result.ok and result.sent == ("spool",)
            outcome = result.outcome("spool")
            assert outcome is not None and outcome.detail is not None and "spool row 1" in outcome.detail
        assert _rows(tmp_path / "spool.sqlite3") == 1  # committed before send() returned
        worker = SpoolWorker.from_config(load_config(str(config)))
        worker.run(once=True, install_signals=False)
        assert worker.delivered == 1
        assert sink.titles("/a") == {"A00001Z": 1} and sink.titles("/b") == {"A00001Z": 1}
        assert _rows(tmp_path / "spool.sqlite3") == 0


def test_a_retry_is_scheduled_in_the_spool_and_the_served_channel_is_never_sent_again(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink({"/b": [(503, {"Retry-After": "1"}, "busy"), (200, {}, "ok")]})
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a", "two": f"{server.url}/b"})
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            assert dispatcher.send(_alert(2)).ok
        cfg = load_config(str(config))
        worker = SpoolWorker.from_config(cfg)
        worker.run(once=True, install_signals=False)
        assert worker.retried == 1 and worker.delivered == 0
        assert sink.titles("/a") == {"A00002Z": 1} and not sink.titles("/b")
        spool = worker.spool
        assert spool.claim(1) == []  # not due yet: not claimed
        time.sleep(1.1)  # Retry-After: 1 (honoured up to the cap)
        worker.run(once=True, install_signals=False)
        assert worker.delivered == 1
        assert sink.titles("/a") == {"A00002Z": 1} and sink.titles("/b") == {"A00002Z": 1}
        assert _rows(tmp_path / "spool.sqlite3") == 0


def test_a_full_spool_delivers_in_process_and_says_why(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"}, extra="spool_max_bytes = 65536")
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            big = "x" * 30_000
            results = [dispatcher.send(Alert(f"A{n:05d}Z", big, "error")) for n in range(12)]
        fell_back = [r for r in results if "spool" in r.skipped]
        assert fell_back, "the cap was never reached"
        for result in fell_back:
            assert result.sent == ("one",)
            assert "the spool is full" in result.skipped["spool"] and "in-process" in result.skipped["spool"]
        spooled = [r for r in results if r.sent == ("spool",)]
        assert len(spooled) + len(fell_back) == 12  # never a silent drop
        assert sum(sink.titles("/a").values()) == len(fell_back)


def test_an_unwritable_or_locked_spool_delivers_in_process_within_its_bound(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        (tmp_path / "file").write_text("not a folder")
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"})
        text = config.read_text().replace(f"{tmp_path}/spool.sqlite3", f"{tmp_path}/file/spool.sqlite3")
        config.write_text(text)
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            result = dispatcher.send(_alert(3))
        assert result.sent == ("one",) and "spool" in result.skipped
        assert "in-process" in result.skipped["spool"]

        locked_dir = tmp_path / "locked"
        locked_dir.mkdir()
        config = kit.write_config(locked_dir, {"one": f"{server.url}/a"})
        Spool(str(locked_dir / "spool.sqlite3")).status(300)  # created
        holder = sqlite3.connect(locked_dir / "spool.sqlite3", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with AlertDispatcher.from_config(str(config)) as dispatcher:
                started = time.monotonic()
                result = dispatcher.send(_alert(4))
                elapsed = time.monotonic() - started
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert result.sent == ("one",) and "locked" in result.skipped["spool"]
        assert elapsed < 3.0  # the spool's busy timeout (1 s) and the in-process delivery
        assert sink.titles("/a") == {"A00003Z": 1, "A00004Z": 1}


def test_spool_settings_are_checked_with_units(tmp_path: Path, kit: Any) -> None:
    from alert_infra.exceptions import AlertConfigurationError
    from alert_infra.queued.settings import parse_duration, spool_settings

    assert parse_duration("90s", "x", maximum=1e9) == 90
    assert parse_duration("5m", "x", maximum=1e9) == 300
    assert parse_duration("2h", "x", maximum=1e9) == 7200
    assert parse_duration("1d", "x", maximum=1e9) == 86400
    assert parse_duration(12, "x", maximum=1e9) == 12
    config = kit.write_config(
        tmp_path, {"one": "https://127.0.0.1:9/a"}, extra='spool_lease = "45s"\nspool_overdue = "2m"'
    )
    settings = spool_settings(load_config(str(config)))
    assert settings.lease == 45 and settings.overdue == 120 and settings.sync == "normal" and settings.explicit
    for bad in ('spool_lease = "2m"', 'spool_sync = "sometimes"', "spool_max_bytes = 10", 'spool = "/tmp/x"'):
        config = kit.write_config(tmp_path, {"one": "https://127.0.0.1:9/a"}, extra=bad)
        with pytest.raises(AlertConfigurationError, match=bad.split(" ")[0]):
            load_config(str(config))


_KILLER = """
import os, signal, sys
from alert_infra import AlertDispatcher
from alert_infra.queued.spool import Spool
from alert_infra.queued.worker import SpoolWorker

class Transport:
    name = "out"
    blocking = False
    def send(self, alert):
        if alert.title.startswith("POISON"):
            os.kill(os.getpid(), signal.SIGKILL)
        with open(sys.argv[2], "a") as f:
            f.write(alert.title + "\\n")
        return "ok"

SpoolWorker(Spool(sys.argv[1]), AlertDispatcher([Transport()])).run(once=True)
"""


def test_a_row_that_kills_its_worker_is_dead_lettered_after_3_and_the_rows_behind_it_are_delivered(
    tmp_path: Path, kit: Any
) -> None:
    config = kit.write_config(tmp_path, {"out": "https://127.0.0.1:9/a"})
    with AlertDispatcher.from_config(str(config)) as dispatcher:
        assert dispatcher.send(Alert("POISON pill", "kills its worker")).ok
        for n in range(3):
            assert dispatcher.send(_alert(n)).ok
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    seen = tmp_path / "seen.txt"
    spool_file = str(tmp_path / "spool.sqlite3")
    codes = [
        subprocess.run([sys.executable, str(script), spool_file, str(seen)], env=kit.env(), timeout=60).returncode
        for _ in range(MAX_STARTS)
    ]
    assert codes == [-signal.SIGKILL] * MAX_STARTS
    final = subprocess.run([sys.executable, str(script), spool_file, str(seen)], env=kit.env(), timeout=60)
    assert final.returncode == 0
    assert sorted(seen.read_text().split("\n")[:-1]) == [f"A{n:05d}Z disk full" for n in range(3)]

    out = _Out()
    assert main(["outbox", "--config", str(config), "--dead", "--json"], out=out) == 0
    dead = json.loads(out.text)["dead"]
    assert len(dead) == 1 and dead[0]["title"].startswith("POISON") and "killed its worker 3 times" in dead[0]["reason"]
    out = _Out()
    assert main(["outbox", "--config", str(config), "--json"], out=out) == 0
    assert json.loads(out.text)["spool"]["dead"] == 1 and json.loads(out.text)["spool"]["pending"] == 0
    assert main(["outbox", "--config", str(config), "--replay", str(dead[0]["id"])], out=_Out()) == 0
    assert Spool(spool_file).status(300)["pending"] == 1
    assert main(["outbox", "--config", str(config), "--replay", "999"], out=_Out()) == 1


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_outbox_exits_1_when_a_row_is_overdue(tmp_path: Path, kit: Any) -> None:
    config = kit.write_config(tmp_path, {"one": "https://127.0.0.1:9/a"}, extra="spool_overdue = 1")
    with AlertDispatcher.from_config(str(config)) as dispatcher:
        assert dispatcher.send(_alert(5)).ok
    out = _Out()
    assert main(["outbox", "--config", str(config)], out=out) == 0
    assert "1 pending" in out.text
    with sqlite3.connect(tmp_path / "spool.sqlite3") as conn:
        conn.execute("UPDATE spool SET due = due - 5, created = created - 5")
    out = _Out()
    assert main(["outbox", "--config", str(config)], out=out) == 1
    assert "1 overdue" in out.text and "oldest 5s old" in out.text


def test_two_workers_on_one_spool_deliver_every_alert_once(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"})
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            for n in range(200):
                assert dispatcher.send(_alert(n)).ok
        workers = [kit.start_worker(config, server.ca_file, "--once", "--concurrency", "2") for _ in range(2)]
        for process in workers:
            assert process.wait(60) == 0
        titles = sink.titles("/a")
        assert len(titles) == 200 and set(titles.values()) == {1}
        assert _rows(tmp_path / "spool.sqlite3") == 0


def test_sigterm_finishes_what_runs_and_exits_0(tmp_path: Path, kit: Any) -> None:
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a"})
        process = kit.start_worker(config, server.ca_file)
        try:
            with AlertDispatcher.from_config(str(config)) as dispatcher:
                assert dispatcher.send(_alert(7)).ok
            kit.wait_for(lambda: sink.titles("/a"), what="the delivery")
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0


@pytest.mark.slow
def test_storm_sigkill_of_the_whole_worker_group_loses_nothing(tmp_path: Path, kit: Any) -> None:
    total = 1000
    sink = kit.Sink()
    with https_server(sink) as server:
        config = kit.write_config(tmp_path, {"one": f"{server.url}/a", "two": f"{server.url}/b"})
        with AlertDispatcher.from_config(str(config)) as dispatcher:
            for n in range(total):
                assert dispatcher.send(_alert(n)).sent == ("spool",)
        first = kit.start_worker(config, server.ca_file, "--concurrency", "4")
        kit.wait_for(lambda: sum(sink.titles("/a").values()) >= total // 3, timeout=120, what="a third delivered")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        with sqlite3.connect(tmp_path / "spool.sqlite3") as conn:
            leased = conn.execute(
                "SELECT COUNT(*) FROM spool WHERE holder_pid = ? AND lease_until > ?", (first.pid, time.time())
            ).fetchone()[0]
        second = kit.start_worker(config, server.ca_file, "--once", "--concurrency", "4")
        assert second.wait(300) == 0
        one, two = sink.titles("/a"), sink.titles("/b")
        lost = [n for n in range(total) if f"A{n:05d}Z" not in one or f"A{n:05d}Z" not in two]
        duplicated = {t for t, c in (one + two).items() if c > 2} | {t for t in one if one[t] > 1 or two[t] > 1}
        print(
            f"storm: {total} alerts x 2 channels, leased at the kill {leased}, "
            f"lost {len(lost)}, duplicated {len(duplicated)}"
        )
        assert lost == []
        assert len(duplicated) <= leased
        assert _rows(tmp_path / "spool.sqlite3") == 0
