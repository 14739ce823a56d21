"""Cross-run policies tell the truth (issue 11, item 8): separate ``alert-infra send`` runs (cron)
share throttle and de-duplication through a local SQLite file when no state is configured, and
``check`` says where the policies live."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from alert_infra.testing import CliRunner


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    return CliRunner(tmp_path)


def _statuses(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    data = json.loads(run.stdout)
    return {c["name"]: c.get("suppressed_by") or c["status"] for c in data["channels"]}


def test_dedup_holds_across_separate_runs_without_any_server(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text('[channels.ops]\ntype = "noop"\ndedup_window = 3600\n')
    first = cli("send", "Backup failed", "exit 3", "--json")
    second = cli("send", "Backup failed", "exit 3", "--json")
    other = cli("send", "Backup failed on db2", "exit 3", "--json")
    assert _statuses(first) == {"ops": "sent"}
    assert _statuses(second) == {"ops": "dedup"}  # the second cron run is recognised
    assert _statuses(other) == {"ops": "sent"}
    assert (cli.cwd / "state" / "alert-infra" / "state.sqlite3").is_file()  # beside the audit trail


def test_throttle_holds_across_runs(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text('[channels.ops]\ntype = "noop"\nthrottle = { rate = 2, per = 3600 }\n')
    runs = [_statuses(cli("send", f"Job {i} failed", "m", "--json"))["ops"] for i in range(4)]
    assert runs == ["sent", "sent", "throttle", "throttle"]


def test_explicit_memory_state_is_honoured_and_check_says_it_forgets(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text(
        '[alert_infra]\nstate = "memory"\n\n[channels.ops]\ntype = "noop"\ndedup_window = 3600\n'
    )
    assert _statuses(cli("send", "Same", "m", "--json")) == {"ops": "sent"}
    assert _statuses(cli("send", "Same", "m", "--json")) == {"ops": "sent"}  # the user chose memory
    assert not (cli.cwd / "state" / "alert-infra" / "state.sqlite3").exists()
    check = cli("check")
    assert check.returncode == 0
    assert 'state = "memory" forgets them when the process exits' in check.stderr


def test_check_says_where_policies_live_when_no_state_is_configured(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text('[channels.ops]\ntype = "noop"\ndedup_window = 600\n')
    check = cli("check", "--json")
    data = json.loads(check.stdout)
    assert check.returncode == 0 and data["ok"]
    (warning,) = data["warnings"]
    assert "hold within one process" in warning and "state.sqlite3" in warning and "redis://" in warning


def test_no_policy_no_throttle_state_no_warning(cli: CliRunner) -> None:
    # Since the alert lifecycle (issue 22) the file exists after any send: it holds the notification
    # log (a later `send --status resolved` goes to the channels that delivered the firing alert) and
    # the silences. Without a policy it holds no throttle or de-duplication tables, and check is quiet.
    import sqlite3

    (cli.cwd / "alert-infra.toml").write_text('[channels.ops]\ntype = "noop"\n')
    assert cli("send", "t", "m").returncode == 0
    with sqlite3.connect(cli.cwd / "state" / "alert-infra" / "state.sqlite3") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"lifecycle_silences", "lifecycle_nlog"}
    assert json.loads(cli("check", "--json").stdout)["warnings"] == []


def test_a_configured_sqlite_state_that_cannot_be_created_is_a_check_problem(cli: CliRunner) -> None:
    # send refuses it (exit 2): check must too (issue 19, item 7), not merely warn.
    folder = cli.cwd / "not-a-folder"
    folder.write_text("a file")
    (cli.cwd / "alert-infra.toml").write_text(
        f'[alert_infra]\nstate = "sqlite:///{folder}/state.db"\n\n[channels.ops]\ntype = "noop"\n'
    )
    run = cli("check", "--json")
    data = json.loads(run.stdout)
    assert run.returncode == 2, run.stdout + run.stderr
    problems = data["error"]["problems"]
    assert any(p.startswith("alert_infra.state: the SQLite state file") for p in problems), problems
    assert cli("send", "t").returncode == 2


def test_a_configured_sqlite_state_that_cannot_be_written_is_a_check_warning(cli: CliRunner) -> None:
    # An existing file send cannot write: send fails open to memory, so check warns.
    path = cli.cwd / "state.db"
    path.write_text("")
    path.chmod(0o400)
    (cli.cwd / "alert-infra.toml").write_text(
        f'[alert_infra]\nstate = "sqlite:///{path}"\n\n[channels.ops]\ntype = "noop"\n'
    )
    if os.access(path, os.W_OK):
        pytest.skip("running as root: every file is writable")
    data = json.loads(cli("check", "--json").stdout)
    assert any(w.startswith("alert_infra.state: the SQLite file") for w in data["warnings"]), data["warnings"]


def test_check_warns_about_a_redis_state_that_accepts_and_never_answers(cli: CliRunner) -> None:
    """A server that takes the connection and never replies to PING: a bounded warning, no password."""
    pytest.importorskip("redis")
    from alert_infra.testing import hostile_server

    with hostile_server("stall_tls", max_seconds=30) as server:
        port = server.url.rsplit(":", 1)[1].split("/")[0]
        (cli.cwd / "alert-infra.toml").write_text(
            f'[alert_infra]\nstate = "redis://:never-printed-pw@127.0.0.1:{port}/0"\n\n'
            '[channels.ops]\ntype = "noop"\ndedup_window = 60\n'
        )
        run = cli("check", "--json")
    data = json.loads(run.stdout)
    assert run.returncode == 0 and data["ok"], run.stdout + run.stderr
    assert any("does not answer a PING" in w for w in data["warnings"]), data["warnings"]
    assert "never-printed-pw" not in run.stdout + run.stderr
