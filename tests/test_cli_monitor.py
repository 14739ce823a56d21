"""``alert-infra ping``, ``run``, ``watch`` and ``status`` (issue 25), as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from alert_infra.testing import CliRunner

SECRET_PATH = "/ping/0d5f-secret-watchdog-uuid"


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    (tmp_path / "alert-infra.toml").write_text('[channels.ops]\ntype = "noop"\n')
    return CliRunner(tmp_path, timeout=60)


def _json(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.stdout, run.stderr
    data: dict[str, Any] = json.loads(run.stdout)
    return data


def _alerts(cli: CliRunner) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = _json(cli("history", "--json", "--limit", "100"))["alerts"]
    return alerts


def test_ping_and_status_json_shape_and_exit_codes(cli: CliRunner) -> None:
    ping = _json(cli("ping", "backup", "--every", "1d", "--grace", "1h", "--json"))
    assert ping["command"] == "ping" and ping["exit_code"] == 0
    assert ping["monitor"]["name"] == "backup" and ping["monitor"]["state"] == "up"
    assert cli("send", "Disk full", "on db1").returncode == 0
    run = cli("status", "--json")
    assert run.returncode == 0, run.stdout
    status = _json(run)
    assert set(status) >= {"schema", "command", "ok", "exit_code", "error", "warnings"}
    assert status["command"] == "status"
    assert {k: status[k] for k in ("silences", "groups", "queues")} == {"silences": 0, "groups": 0, "queues": {}}
    (ops,) = status["channels"]
    assert set(ops) == {"name", "type", "last_success", "last_failure", "last_failure_reason", "sent", "failed"}
    assert (ops["name"], ops["type"], ops["sent"], ops["failed"], ops["last_failure"]) == ("ops", "noop", 1, 0, None)
    assert ops["last_success"].endswith("Z")
    (backup,) = status["monitors"]
    assert set(backup) == {"name", "state", "last_ping"} and backup["state"] == "up"
    # a failed run: exit 1 for a health check
    assert cli("ping", "backup", "--fail").returncode == 0
    failed = cli("status", "--json")
    assert failed.returncode == 1 and _json(failed)["monitors"][0]["state"] == "failed"
    people = cli("status")
    assert people.returncode == 1 and "backup: failed" in people.stdout


def test_status_exits_1_when_a_channels_last_try_failed(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text(
        '[channels.hook]\ntype = "webhook"\nurl = "https://127.0.0.1:9/hook"\ntimeout = 1\nretry = { attempts = 1 }\n'
    )
    assert cli("send", "x", "y").returncode == 1
    run = cli("status", "--json")
    assert run.returncode == 1
    (hook,) = _json(run)["channels"]
    assert hook["failed"] == 1 and hook["last_failure_reason"] and hook["last_success"] is None


def test_status_gives_the_failure_class_also_for_rows_written_before_it_was_kept(cli: CliRunner) -> None:
    import sqlite3

    (cli.cwd / "alert-infra.toml").write_text(
        '[channels.hook]\ntype = "webhook"\nurl = "https://127.0.0.1:9/hook"\ntimeout = 1\nretry = { attempts = 1 }\n'
    )
    assert cli("send", "refused", "y").returncode == 1
    first = _json(cli("status", "--json"))["channels"][0]
    assert first["last_failure_reason"] == "connection"  # the audit row's failure_class, not the error's name
    people = cli("status")
    assert people.returncode == 1 and "(connection)" in people.stdout
    # A row of an older trail: no failure_class; status classifies it by its error's class name.
    trail = cli.cwd / "state" / "alert-infra" / "audit.sqlite3"
    with sqlite3.connect(trail) as db:
        db.execute("UPDATE outcomes SET failure_class = NULL, error = 'ReadTimeout'")
    db.close()
    (hook,) = _json(cli("status", "--json"))["channels"]
    assert hook["last_failure_reason"] == "timeout" and hook["failed"] == 1
    with sqlite3.connect(trail) as db:
        db.execute("UPDATE outcomes SET failure_class = NULL, error = 'SomethingOdd'")
    db.close()
    assert _json(cli("status", "--json"))["channels"][0]["last_failure_reason"] == "other"


def test_status_counts_the_open_groups_of_the_lifecycle_store(cli: CliRunner) -> None:
    from alert_infra.lifecycle import open_store

    assert _json(cli("status", "--json"))["groups"] == 0
    state = cli.cwd / "state" / "alert-infra" / "state.sqlite3"
    groups = open_store(f"sqlite:///{state}", "groups")
    try:
        # One record per (channel, group) as a dispatcher that groups writes them; a group whose
        # alerts all resolved is removed by its last flush (an empty one is not open).
        for key, alerts in (("ops|g1", {"fp1": {"status": "firing"}}), ("ops|g2", {"fp2": {"status": "firing"}})):
            groups.put(key, {"alerts": alerts, "labels": {}, "next": 0.0, "last": None})
        groups.put("ops|g3", {"alerts": {}, "labels": {}, "next": 0.0, "last": None})
    finally:
        groups.close()
    run = cli("status", "--json")
    assert _json(run)["groups"] == 2, run.stdout
    people = cli("status")
    assert "silences: 0, groups: 2" in people.stdout


def test_status_late_is_exit_0(cli: CliRunner) -> None:
    assert cli("ping", "quick", "--every", "1", "--grace", "600").returncode == 0
    time.sleep(1.1)
    run = cli("status", "--json")
    assert run.returncode == 0 and _json(run)["monitors"][0]["state"] == "late"


def test_run_pings_start_and_outcome_and_exits_with_the_commands_code(cli: CliRunner) -> None:
    ok = cli("run", "job-ok", "--every", "1h", "--", sys.executable, "-c", "print('hello from the job')")
    assert ok.returncode == 0 and "hello from the job" in ok.stdout
    bad = cli("run", "job-bad", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert bad.returncode == 3
    missing = cli("run", "job-missing", "--", "/nonexistent/command")
    assert missing.returncode == 127
    states = {m["name"]: m["state"] for m in _json(cli("status", "--json"))["monitors"]}
    assert states == {"job-ok": "up", "job-bad": "failed", "job-missing": "failed"}
    watch = cli("watch", "--once", "--json")
    assert watch.returncode == 0, watch.stdout
    assert sorted(tuple(s.values()) for s in _json(watch)["sent"]) == [("job-bad", "failed"), ("job-missing", "failed")]
    titles = sorted(a["title"] for a in _alerts(cli))
    assert titles == ["job-bad failed", "job-missing failed"]
    assert "ExitCode: exited with code 3" in next(a for a in _alerts(cli) if a["title"] == "job-bad failed")["message"]
    usage = cli("run", "job")
    assert usage.returncode == 2 and "after --" in usage.stderr


def test_watch_raises_then_resolves_with_one_fingerprint(cli: CliRunner) -> None:
    assert cli("ping", "nightly", "--every", "1", "--grace", "60").returncode == 0
    time.sleep(1.1)
    assert _json(cli("watch", "--once", "--json"))["sent"] == [{"job": "nightly", "alert": "late"}]
    assert _json(cli("watch", "--once", "--json"))["sent"] == []  # raised once
    assert cli("ping", "nightly").returncode == 0
    assert _json(cli("watch", "--once", "--json"))["sent"] == [{"job": "nightly", "alert": "resolved"}]
    alerts = _alerts(cli)
    assert [(a["title"], a["severity"], a["alert_status"]) for a in alerts] == [
        ("nightly is up", "info", "resolved"),
        ("nightly is late", "warning", "firing"),
    ]
    assert alerts[0]["fingerprint"] == alerts[1]["fingerprint"]


def _popen_watch(cli: CliRunner, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "alert_infra", "watch", *args],
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sigkilled_watcher_restarted_sends_no_duplicate_page(cli: CliRunner) -> None:
    assert cli("ping", "backup", "--fail").returncode == 0
    first = _popen_watch(cli, "--interval", "0.1")
    try:
        assert _wait_for(lambda: len(_alerts(cli)) == 1)
        time.sleep(0.5)  # several more cycles: still one page
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    again = cli("watch", "--once", "--json")
    assert again.returncode == 0 and _json(again)["sent"] == []
    second = _popen_watch(cli, "--interval", "0.1")
    time.sleep(1.0)
    second.send_signal(signal.SIGTERM)  # exits cleanly
    assert second.wait(timeout=10) == 0, second.communicate()
    assert [a["title"] for a in _alerts(cli)] == ["backup failed"]


def _watchdog_config(cli: CliRunner, url: str) -> None:
    (cli.cwd / "alert-infra.toml").write_text(
        '[channels.ops]\ntype = "noop"\n\n[alert_infra.watchdog]\nurl = "${WATCHDOG_URL}"\nevery = 1\ntimeout = 1\n'
    )
    cli.env["WATCHDOG_URL"] = url
    cli.env["SSL_CERT_FILE"] = cli.env["REQUESTS_CA_BUNDLE"] = os.environ["REQUESTS_CA_BUNDLE"]


def _no_secret(*runs: Any) -> None:
    for run in runs:
        text = run if isinstance(run, str) else run.stdout + run.stderr
        assert "secret-watchdog" not in text


def test_watch_pings_the_watchdog_and_never_shows_its_url(cli: CliRunner) -> None:
    from alert_infra.testing import https_server

    with https_server(lambda request: (200, {}, "OK")) as server:
        _watchdog_config(cli, server.url + SECRET_PATH)
        runs = [cli("watch", "--once", "--json", "-vv"), cli("status", "--json"), cli("check", "--json")]
        watcher = _popen_watch(cli, "--interval", "0.1", "-vv")
        assert _wait_for(lambda: len(server.requests) >= 3)
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=10)
    assert watcher.returncode == 0
    paths = [r.path for r in server.requests]
    assert paths[:2] == [SECRET_PATH, SECRET_PATH + "/start"]
    _no_secret(*runs, out + err, (cli.cwd / "alert-infra.toml").read_text())


@pytest.mark.parametrize("behaviour", ["trickle", "never_answer"])
def test_a_hanging_watchdog_endpoint_is_bounded_and_the_alert_goes_out(cli: CliRunner, behaviour: str) -> None:
    from alert_infra.testing import hostile_server

    assert cli("ping", "etl", "--fail").returncode == 0
    with hostile_server(behaviour, interval=0.1) as server:
        _watchdog_config(cli, server.url + SECRET_PATH)
        started = time.monotonic()
        run = cli("watch", "--once", "--json", "-v")
        took = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    assert _json(run)["sent"] == [{"job": "etl", "alert": "failed"}]
    assert took < 8  # interpreter start + the 1 s ping deadline, whatever the endpoint does
    assert [a["title"] for a in _alerts(cli)] == ["etl failed"]
    _no_secret(run)
