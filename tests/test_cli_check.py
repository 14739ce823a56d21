"""``alert-infra check`` builds what ``send`` builds (issue 11, item 2). Real subprocesses.

It constructs every channel through the plugin host (as ``send`` does, sending nothing), reports
every problem at once (exit 2), closes what it built, and warns (exit 0) when the Redis state does
not answer or the audit trail cannot be written.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from alert_infra.testing import CliRunner, unused_port

SLACK_SECRET = "degrade-check-slack-secret-1111"
TELEGRAM_SECRET = "check-telegram-secret-2222"
PD_SECRET = "pdshort3333"
REDIS_PASSWORD = "check-redis-password-4444"
SECRETS = (SLACK_SECRET, TELEGRAM_SECRET, PD_SECRET, REDIS_PASSWORD)

FOUR_MISTAKES = f"""
[channels.slack]
type = "slack"
webhook_url = "http://hooks.slack.com/services/T0/B0/{SLACK_SECRET}"

[channels.telegram]
type = "telegram"
bot_token = "{TELEGRAM_SECRET}"
chat_id = "42"

[channels.pd]
type = "pagerduty"
routing_key = "{PD_SECRET}"

[channels.mail]
type = "smtp"
host = "127.0.0.1"
from_email = "not an address"
to_emails = ["ops@example.com"]

[channels.fine]
type = "noop"
"""

PLUGIN = """
import os
from alert_infra import hookimpl
from alert_infra.transports import BaseTransport


class Marker(BaseTransport):
    name = "marker"

    def __init__(self, *, folder: str, name=None, format=None):
        super().__init__(name=name, format=format)
        self.folder = folder
        open(os.path.join(folder, "built-" + self.name), "w").close()

    def send(self, alert):
        open(os.path.join(self.folder, "sent-" + self.name), "w").close()

    def close(self):
        open(os.path.join(self.folder, "closed-" + self.name), "w").close()


@hookimpl
def alert_infra_register_transports(register):
    register(Marker)
"""


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    return CliRunner(tmp_path)


def _no_secret(*runs: subprocess.CompletedProcess[str]) -> None:
    for run in runs:
        text = run.stdout + run.stderr
        assert "Traceback" not in text, text
        for secret in SECRETS:
            assert secret not in text, (secret, text)


def test_check_builds_every_channel_and_reports_each_refusal_at_once(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text(FOUR_MISTAKES)
    run = cli("check")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "4 problems in" in run.stderr
    for fragment in (
        "channel 'slack' (type 'slack'): Slack webhook_url must be an absolute https:// URL",
        "channel 'telegram' (type 'telegram'): Telegram bot_token is malformed",
        "channel 'pd' (type 'pagerduty'): PagerDuty routing_key must be the 32-character integration key",
        "channel 'mail' (type 'smtp'): from_email is not a valid email address",
    ):
        assert fragment in run.stderr, fragment
    as_json = cli("check", "--json")
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and len(data["error"]["problems"]) == 4 and data["error"]["kind"] == "configuration"
    # send refuses exactly these four, and still delivers to the healthy one
    sent = cli("send", "t", "m", "--json")
    assert sent.returncode == 1
    statuses = {c["name"]: c["status"] for c in json.loads(sent.stdout)["channels"]}
    assert [name for name, status in statuses.items() if status == "sent"] == ["fine"]
    assert {name for name, status in statuses.items() if status == "failed"} == {"slack", "telegram", "pd", "mail"}
    _no_secret(run, as_json, sent)


def test_check_refuses_an_unset_variable(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text('[channels.pd]\ntype = "pagerduty"\nrouting_key = "${PD_KEY_UNSET_X}"\n')
    cli.env.pop("PD_KEY_UNSET_X", None)
    run = cli("check")
    assert run.returncode == 2
    assert "channels.pd.routing_key: environment variable PD_KEY_UNSET_X is not set" in run.stderr


def test_check_constructs_and_closes_what_it_built_without_sending(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "check_marker_plugin.py").write_text(PLUGIN)
    cli.env["PYTHONPATH"] = str(tmp_path) + os.pathsep + cli.env.get("PYTHONPATH", "")
    cli.env["ALERT_INFRA_PLUGINS"] = "check_marker_plugin"
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "alert-infra.toml").write_text(f'[channels.m]\ntype = "marker"\nfolder = "{marks}"\n')
    run = cli("check")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "valid; 1 enabled channel(s): m" in run.stdout
    assert sorted(p.name for p in marks.iterdir()) == ["built-m", "closed-m"]


def test_check_warns_when_redis_does_not_answer_and_the_audit_cannot_be_written(cli: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{unused_port()}/0"
    (tmp_path / "alert-infra.toml").write_text(
        f'[alert_infra]\nstate = "{url}"\naudit = "sqlite://{blocker}/sub/audit.sqlite3"\n'
        '[channels.ok]\ntype = "noop"\n'
    )
    started = time.monotonic()
    run = cli("check")
    assert time.monotonic() - started < 60  # a short PING timeout, not a hang
    assert run.returncode == 0, run.stdout + run.stderr  # warnings do not fail the check
    assert "valid; 1 enabled channel(s): ok" in run.stdout
    assert "alert-infra: warning: alert_infra.state: the Redis server does not answer a PING" in run.stderr
    assert f"alert-infra: warning: audit trail {blocker}/sub/audit.sqlite3: cannot be created" in run.stderr
    as_json = cli("check", "--json")
    assert as_json.returncode == 0
    assert len(json.loads(as_json.stdout)["warnings"]) == 2
    _no_secret(run, as_json)


def test_check_has_no_warning_for_a_reachable_redis_and_a_writable_audit(cli: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("redis")
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2, socket_timeout=2).ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    (tmp_path / "alert-infra.toml").write_text(
        '[alert_infra]\nstate = "redis://127.0.0.1:6379/0"\n[channels.ok]\ntype = "noop"\n'
    )
    run = cli("check", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["warnings"] == []


def test_check_warnings_go_to_the_err_stream_of_main(tmp_path: Path) -> None:
    import io

    from alert_infra.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = tmp_path / "alert-infra.toml"
    config.write_text(f'[alert_infra]\naudit = "sqlite://{blocker}/audit.sqlite3"\n[channels.ok]\ntype = "noop"\n')
    out, err = io.StringIO(), io.StringIO()
    assert main(["check", "--config", str(config)], out=out, err=err) == 0
    assert "valid; 1 enabled channel(s): ok" in out.getvalue()
    assert f"alert-infra: warning: audit trail {blocker}/audit.sqlite3: cannot be created" in err.getvalue()
