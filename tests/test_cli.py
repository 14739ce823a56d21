"""The ``alert-infra`` command line, run as a real subprocess (``python -m alert_infra``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from alert_infra.testing import CliRunner, unused_port

WEBHOOK = "https://hooks.slack.com/services/T0001/B0001/cli-test-secret-value-1234"


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    return CliRunner(tmp_path)


def test_send_without_configuration_uses_the_console_and_history_lists_it(cli: CliRunner) -> None:
    sent = cli("send", "Disk full", "/var at 97%", "--severity", "warning", "--meta", "host=db1", "--tag", "db")
    assert sent.returncode == 0, sent.stderr
    assert "[WARNING] Disk full" in sent.stderr  # the console channel writes to standard error
    assert "sent     console" in sent.stdout
    history = cli("history")
    assert history.returncode == 0
    assert "Disk full" in history.stdout and "console:sent" in history.stdout
    assert (cli.cwd / "state" / "alert-infra" / "audit.sqlite3").is_file()


def test_send_reads_the_message_from_stdin(cli: CliRunner) -> None:
    result = cli("send", "Backup failed", "--json", "--source", "cron", stdin="exit code 3\nsee /var/log/backup\n")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["alert"]["message"] == "exit code 3\nsee /var/log/backup"
    assert data["alert"]["source"] == "cron"
    assert [(c["name"], c["status"]) for c in data["channels"]] == [("console", "sent")]
    assert isinstance(data["id"], int) and data["ok"] is True and data["command"] == "send"


def test_ack_round_trip(cli: CliRunner) -> None:
    alert_id = json.loads(cli("send", "Queue stuck", "m", "--json").stdout)["id"]
    acked = cli("ack", str(alert_id), "--by", "dana", "--note", "restarting workers")
    assert acked.returncode == 0, acked.stderr
    assert f"alert {alert_id} 'Queue stuck' acknowledged by dana" in acked.stdout
    records = json.loads(cli("history", "--json").stdout)["alerts"]
    assert records[0]["acknowledged_by"] == "dana" and records[0]["ack_note"] == "restarting workers"
    assert json.loads(cli("history", "--json", "--unacked").stdout)["alerts"] == []
    missing = cli("ack", "4242")
    assert missing.returncode == 2 and "no alert with id 4242" in missing.stderr


def test_exit_code_one_when_a_channel_fails_and_zero_when_it_is_skipped(cli: CliRunner) -> None:
    port = unused_port()  # nothing listens: connection refused
    (cli.cwd / "alert-infra.toml").write_text(
        f"""
[channels.ops]
type = "noop"

[channels.hook]
type = "slack"
webhook_url = "https://127.0.0.1:{port}/services/T/B/secret-path-9876"
min_severity = "critical"
retry = false
"""
    )
    failed = cli("send", "Payments down", "m", "--severity", "critical")
    assert failed.returncode == 1, failed.stderr
    assert "sent     ops" in failed.stdout and "failed   hook" in failed.stdout
    assert "secret-path-9876" not in failed.stdout + failed.stderr
    skipped = cli("send", "Minor", "m", "--severity", "warning")
    assert skipped.returncode == 0
    assert "skipped  hook  (severity warning is below the channel's minimum critical)" in skipped.stdout
    failures = json.loads(cli("history", "--json", "--channel", "hook", "--status", "failed").stdout)["alerts"]
    assert [r["title"] for r in failures] == ["Payments down"]


def test_check_reports_three_mistakes_at_once_and_exits_2(cli: CliRunner) -> None:
    config = cli.cwd / "broken.toml"
    config.write_text(
        f"""
[channels.ops]
type = "slak"
webhook_url = "{WEBHOOK}"

[channels.mail]
type = "console"
min_severity = "fatal"

[channels.pager]
type = "noop"
retry = {{ attempts = 0 }}
"""
    )
    result = cli("check", "--config", str(config))
    assert result.returncode == 2
    for expected in (
        "3 problems in",
        "channels.ops.type: unknown transport type 'slak'",
        "channels.mail.min_severity: must be one of",
        "channels.pager.retry.attempts: must be a whole number from 1 to 100",
    ):
        assert expected in result.stderr, expected
    assert "cli-test-secret" not in result.stdout + result.stderr


def test_check_valid_and_send_test(cli: CliRunner) -> None:
    config = cli.cwd / "alert-infra.toml"
    config.write_text('[channels.ops]\ntype = "noop"\nmin_severity = "critical"\n\n[channels.con]\ntype = "console"\n')
    valid = cli("check")
    assert valid.returncode == 0 and "valid; 2 enabled channel(s): ops, con" in valid.stdout
    tested = cli("check", "--send-test")
    assert tested.returncode == 0, tested.stderr
    assert "sent     ops" in tested.stdout and "sent     con" in tested.stdout  # routing does not skip a test
    assert "alert-infra test alert" in tested.stderr
    assert cli("check", "--config", "nope.toml").returncode == 2
    (cli.cwd / "alert-infra.toml").unlink()
    missing = cli("check")
    assert missing.returncode == 2 and "no alert-infra configuration found" in missing.stderr


def test_channels_masks_secrets(cli: CliRunner) -> None:
    pytest.importorskip("alert_infra_slack")
    (cli.cwd / "alert-infra.toml").write_text(
        f"""
[alert_infra]
default_channels = ["ops"]

[channels.ops]
type = "slack"
webhook_url = "{WEBHOOK}"
min_severity = "warning"
throttle = {{ rate = 10, per = 60 }}

[channels.quiet]
type = "console"
enabled = false
"""
    )
    human = cli("channels")
    assert human.returncode == 0, human.stderr
    assert "ops  type=slack" in human.stdout and "min_severity=warning" in human.stdout
    assert "throttle=10/60s" in human.stdout and "quiet  type=console (disabled)" in human.stdout
    data = json.loads(cli("channels", "--json").stdout)
    assert data["channels"][0]["options"]["webhook_url"] == "[REDACTED]"
    assert "cli-test-secret" not in human.stdout + json.dumps(data)


def test_channels_names_each_channels_templates_and_never_shows_their_text(cli: CliRunner) -> None:
    """A channel's own templates are listed by name (text and --json): never their text (which may
    quote anything, a secret included), never rendered."""
    secret = "tmpl-s3cret-Zq81xk0042"
    (cli.cwd / "alert-infra.toml").write_text(
        f"""
[channels.ops]
type = "console"
title_template = "[{{{{ alert.severity | upper }}}}] {{{{ alert.title }}}} (key {secret})"
body_template = "{{{{ alert.message }}}}"

[channels.titled]
type = "console"
title_template = "{{{{ alert.title }}}}"

[channels.plain]
type = "console"
"""
    )
    human = cli("channels")
    assert human.returncode == 0, human.stderr
    assert "      templates: title_template, body_template\n" in human.stdout
    titled = human.stdout.split("  titled  ")[1].split("  plain  ")[0]
    assert "templates: title_template\n" in titled
    assert "templates:" not in human.stdout.split("  plain  ")[1]
    run = cli("channels", "--json")
    data = json.loads(run.stdout)
    assert {c["name"]: c["templates"] for c in data["channels"]} == {
        "ops": ["title_template", "body_template"],
        "titled": ["title_template"],
        "plain": [],
    }
    everything = human.stdout + human.stderr + run.stdout + run.stderr
    assert secret not in everything and "alert.title" not in everything
    assert "{{" not in everything  # no template text at all


def test_plugins_lists_installed_plugins(cli: CliRunner) -> None:
    pytest.importorskip("alert_infra_slack")
    human = cli("plugins")
    assert human.returncode == 0 and "alert-infra-slack" in human.stdout and "types: slack" in human.stdout
    data = json.loads(cli("plugins", "--json", "--all").stdout)
    types = {t for plugin in data["plugins"] for t in plugin["types"]}
    assert {"slack", "console", "noop"} <= types


@pytest.mark.parametrize("verb", ["send", "plugins", "types", "channels", "check", "history", "ack"])
def test_help_everywhere(cli: CliRunner, verb: str) -> None:
    result = cli(verb, "--help")
    assert result.returncode == 0 and "--config" in result.stdout and "usage: alert-infra" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["send", "t", "m", "--meta", "novalue"], "--meta: expected key=value"),
        (["send", "t", "m", "--severity", "fatal"], "invalid alert: "),
        (["send"], "the following arguments are required: title"),
        (["history", "--since", "last tuesday"], "--since: expected"),
        (["history", "--severity", "huge"], "--severity:"),
        (["history", "--status", "skipped"], "--status: without --channel, one of sent, failed, partial, suppressed"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(cli: CliRunner, args: list[str], fragment: str) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert fragment in result.stderr


def test_history_filters(cli: CliRunner) -> None:
    for title, severity, source in (("a", "info", "web"), ("b", "critical", "billing"), ("c", "error", "web")):
        assert cli("send", title, "m", "--severity", severity, "--source", source).returncode == 0
    titles = lambda *a: [r["title"] for r in json.loads(cli("history", "--json", *a).stdout)["alerts"]]  # noqa: E731
    assert titles() == ["c", "b", "a"]
    assert titles("--severity", "error") == ["c", "b"]
    assert titles("--source", "web") == ["c", "a"]
    assert titles("--limit", "1") == ["c"]
    assert titles("--since", "1h") == ["c", "b", "a"]
    assert titles("--since", "2099-01-01") == []


def test_version(cli: CliRunner) -> None:
    from alert_infra import __version__

    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"alert-infra {__version__}"


def test_console_script_is_installed() -> None:
    if sys.version_info >= (3, 10):
        from importlib.metadata import entry_points
    else:  # pragma: no cover - the backport, on 3.9
        from importlib_metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name == "alert-infra"}
    assert scripts == {"alert-infra": "alert_infra.cli:main"}


def test_alert_text_cannot_drive_the_terminal(cli: CliRunner) -> None:
    title = "Disk \x1b[2J\x1b[31mfull\rforged line"
    sent = cli("send", title, "m")
    assert sent.returncode == 0
    history = cli("history")
    for output in (sent.stdout, history.stdout):
        assert "\x1b" not in output and "\r" not in output
    assert "Disk [2J [31mfull forged line" in history.stdout


def test_send_links_channel_selection_and_no_audit(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text('[channels.a]\ntype = "noop"\n\n[channels.b]\ntype = "noop"\n')
    result = cli("send", "Deploy failed", "m", "--channel", "b", "--link", "Run=https://ci.example.com/r/1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [c["name"] for c in data["channels"]] == ["b"]
    assert data["alert"]["links"] == [["Run", "https://ci.example.com/r/1"]]
    quiet = cli("send", "Not recorded", "m", "--no-audit", "--json")
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["id"] is None
    assert [r["title"] for r in json.loads(cli("history", "--json").stdout)["alerts"]] == ["Deploy failed"]
    bad = cli("send", "t", "m", "--link", "no-equals-sign")
    assert bad.returncode == 2 and "--link: expected label=https://" in bad.stderr
