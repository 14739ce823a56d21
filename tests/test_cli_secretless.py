"""Commands that do not need channels do not need their secrets (issue 11, item 3).

``history``, ``ack`` and ``channels`` work when a channel's ``${VAR}`` is unset; ``history --audit
PATH`` and ``ack --audit PATH`` read no configuration at all; a corrupt or unreadable audit
database is a clear error naming the path, exit 2, never a traceback. Real subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from alert_infra.testing import CliRunner

SECRET = "https://hooks.slack.com/services/T0SECRETLESS/B0SECRETLESS/secretless-value-4242"
SECRET_PART = "secretless-value-4242"

TOML = """
[channels.good]
type = "noop"

[channels.pd]
type = "pagerduty"
routing_key = "${PAGERDUTY_ROUTING_KEY}"

[channels.slack]
type = "slack"
webhook_url = "${SLACK_URL_FOR_TEST}"
"""


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    (tmp_path / "alert-infra.toml").write_text(TOML)
    runner = CliRunner(tmp_path)
    runner.env.pop("PAGERDUTY_ROUTING_KEY", None)
    runner.env["SLACK_URL_FOR_TEST"] = SECRET
    return runner


def _clean(*runs: subprocess.CompletedProcess[str]) -> None:
    for run in runs:
        text = run.stdout + run.stderr
        assert SECRET_PART not in text, text
        assert "Traceback" not in text, text


def test_history_ack_and_channels_work_with_an_unset_variable(cli: CliRunner) -> None:
    sent = cli("send", "Disk full", "/var at 97%", "--channel", "good", "--json")
    assert sent.returncode == 0, sent.stderr
    record_id = json.loads(sent.stdout)["id"]
    history = cli("history")
    assert history.returncode == 0, history.stderr
    assert "Disk full" in history.stdout
    ack = cli("ack", str(record_id), "--by", "alice")
    assert ack.returncode == 0, ack.stderr
    assert "acknowledged by alice" in ack.stdout
    channels = cli("channels")
    assert channels.returncode == 0, channels.stderr
    assert "pd  type=pagerduty" in channels.stdout
    assert "problem: channels.pd.routing_key: environment variable PAGERDUTY_ROUTING_KEY is not set" in channels.stdout
    assert "webhook_url = " in channels.stdout  # shown, masked
    as_json = cli("channels", "--json")
    assert as_json.returncode == 0
    listed = {c["name"]: c for c in json.loads(as_json.stdout)["channels"]}
    assert listed["good"]["problems"] == []
    assert listed["pd"]["problems"] == [
        "channels.pd.routing_key: environment variable PAGERDUTY_ROUTING_KEY is not set"
    ]
    _clean(sent, history, ack, channels, as_json)


def test_history_and_ack_with_audit_need_no_configuration(cli: CliRunner, tmp_path: Path) -> None:
    trail = tmp_path / "trail.sqlite3"
    sent = cli("send", "Backup failed", "exit 3", "--channel", "good", "--audit", str(trail), "--json")
    assert sent.returncode == 0, sent.stderr
    record_id = json.loads(sent.stdout)["id"]
    (tmp_path / "alert-infra.toml").write_text("[channels.good\ntype = broken toml")  # unreadable now
    broken = cli("history")
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr  # needs the configuration's audit path
    history = cli("history", "--audit", str(trail), "--json")
    assert history.returncode == 0, history.stderr
    assert [r["title"] for r in json.loads(history.stdout)["alerts"]] == ["Backup failed"]
    # ack sends the acknowledge to the channels: it needs the configuration (a clear error, nothing
    # recorded); --no-send only records it in the audit trail, and needs none
    sending = cli("ack", str(record_id), "--audit", str(trail), "--by", "bob")
    assert sending.returncode == 2 and "not valid TOML" in sending.stderr
    assert json.loads(cli("history", "--audit", str(trail), "--json").stdout)["alerts"][0]["acknowledged_by"] is None
    ack = cli("ack", str(record_id), "--audit", str(trail), "--by", "bob", "--no-send")
    assert ack.returncode == 0, ack.stderr
    # and with a configuration path that does not exist at all
    cli.env["ALERT_INFRA_CONFIG"] = str(tmp_path / "nowhere.toml")
    again = cli("history", "--audit", str(trail))
    assert again.returncode == 0, again.stderr
    assert "Backup failed" in again.stdout and "bob" in again.stdout
    _clean(sent, broken, history, sending, ack, again)


def _random_bytes(path: Path) -> Path:
    path.write_bytes(os.urandom(8192))
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("make", [_random_bytes, _directory], ids=["random-bytes", "a-directory"])
@pytest.mark.parametrize("verb", [["history"], ["ack", "1"]])
def test_a_corrupt_audit_database_is_a_clear_error(cli: CliRunner, tmp_path: Path, make, verb: list[str]) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path / "bad.sqlite3")
    run = cli(*verb, "--audit", str(path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"cannot use the audit trail {path}" in run.stderr
    _clean(run)


def test_a_corrupt_configured_audit_database_is_a_clear_error(cli: CliRunner, tmp_path: Path) -> None:
    path = _random_bytes(tmp_path / "configured.sqlite3")
    (tmp_path / "alert-infra.toml").write_text(f'[alert_infra]\naudit = "sqlite:///{path}"\n' + TOML)
    run = cli("history")
    assert run.returncode == 2
    assert str(path) in run.stderr
    _clean(run)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_audit_database_is_a_clear_error(cli: CliRunner, tmp_path: Path) -> None:
    trail = tmp_path / "trail.sqlite3"
    assert cli("send", "t", "m", "--channel", "good", "--audit", str(trail)).returncode == 0
    trail.chmod(0)
    try:
        run = cli("history", "--audit", str(trail))
    finally:
        trail.chmod(0o600)
    assert run.returncode == 2
    assert f"cannot use the audit trail {trail}" in run.stderr
    _clean(run)
