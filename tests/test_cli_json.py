"""Scriptable output (issue 11, item 7): with ``--json`` every run of every verb, errors included,
prints exactly one JSON document on standard output, of one documented shape."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alert_infra.testing import CliRunner

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ENVELOPE = {"schema", "command", "ok", "exit_code", "error", "warnings"}
ERROR_KINDS = {"usage", "configuration", "validation", "audit", "error", "interrupted"}
OUTCOME_FIELDS = {"name", "status", "attempts", "elapsed", "error", "retryable", "retry_after", "reason", "detail"}


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    (tmp_path / "alert-infra.toml").write_text(
        '[channels.ops]\ntype = "noop"\n\n'
        '[channels.pd]\ntype = "pagerduty"\nrouting_key = "${UNSET_ROUTING_KEY_FOR_TEST}"\n'
    )
    return CliRunner(tmp_path)


def _document(run: subprocess.CompletedProcess[str], command: str | None) -> dict[str, Any]:
    data = json.loads(run.stdout)  # exactly one document: json.loads refuses trailing text
    assert isinstance(data, dict)
    assert set(data) >= ENVELOPE, set(data)
    assert data["schema"] == 1 and data["command"] == command
    assert data["exit_code"] == run.returncode and data["ok"] is (run.returncode == 0)
    assert isinstance(data["warnings"], list)
    if data["error"] is not None:
        assert data["error"]["kind"] in ERROR_KINDS and data["error"]["message"]
        assert isinstance(data["error"]["problems"], list)
    return data


def test_every_verb_prints_one_document_of_the_shared_shape(cli: CliRunner) -> None:
    sent = cli("send", "Disk full", "/var at 97%", "--json")
    send = _document(sent, "send")
    assert ISO.match(send["alert"]["created_at"]), send["alert"]["created_at"]
    by_name = {c["name"]: c for c in send["channels"]}
    assert set(by_name) == {"ops", "pd"}
    for outcome in by_name.values():
        assert set(outcome) >= OUTCOME_FIELDS
    assert by_name["ops"]["status"] == "sent" and by_name["pd"]["status"] == "failed"
    assert "UNSET_ROUTING_KEY_FOR_TEST" in by_name["pd"]["reason"]

    history = _document(cli("history", "--json"), "history")
    (record,) = history["alerts"]
    assert record["id"] == send["id"] and ISO.match(record["created_at"]) and record["acknowledged_at"] is None
    channels = {c["name"]: c for c in record["channels"]}
    assert channels["pd"]["status"] == "failed" and "UNSET_ROUTING_KEY_FOR_TEST" in channels["pd"]["reason"]
    assert "retry_after" in channels["pd"]

    acked = _document(cli("ack", str(send["id"]), "--by", "dana", "--json"), "ack")
    assert acked["alert"]["acknowledged_by"] == "dana" and ISO.match(acked["alert"]["acknowledged_at"])

    listed = _document(cli("channels", "--json"), "channels")
    assert {c["name"]: c["status"] for c in listed["channels"]} == {"ops": "ok", "pd": "broken"}

    check = _document(cli("check", "--json"), "check")
    assert check["error"]["kind"] == "configuration" and len(check["error"]["problems"]) == 1
    assert {c["name"]: c["status"] for c in check["channels"]} == {"ops": "ok", "pd": "broken"}

    plugins = _document(cli("plugins", "--json", "--all"), "plugins")
    assert all({"name", "status", "types"} <= set(p) for p in plugins["plugins"])

    types = _document(cli("types", "--json"), "types")
    assert {"console", "noop"} <= {t["name"] for t in types["types"]}


@pytest.mark.parametrize(
    ("args", "command", "kind"),
    [
        (["bogus"], None, "usage"),
        (["send"], "send", "usage"),  # the title is missing
        (["send", "t", "m", "--severity", "catastrophic"], "send", "validation"),
        (["send", "t", "m", "--channel", "opz"], "send", "usage"),
        (["history", "--since", "yesterday-ish"], "history", "usage"),
        (["ack", "4242"], "ack", "usage"),
        (["check", "--config", "missing.toml"], "check", "usage"),
        (["types", "slak"], "types", "usage"),
    ],
)
def test_errors_are_documents_too(cli: CliRunner, args: list[str], command: str | None, kind: str) -> None:
    run = cli(*args, "--json")
    assert run.returncode == 2, run.stdout + run.stderr
    data = _document(run, command)
    assert data["error"]["kind"] == kind, data
    assert run.stderr == ""  # nothing else: the document says it all


def test_a_broken_configuration_file_is_a_configuration_error_document(cli: CliRunner) -> None:
    (cli.cwd / "alert-infra.toml").write_text("this is [not toml")
    data = _document(cli("channels", "--json"), "channels")
    assert data["error"]["kind"] == "configuration" and "not valid TOML" in data["error"]["message"]


def test_a_reader_that_goes_away_ends_the_command_quietly(cli: CliRunner) -> None:
    """``alert-infra types | head -1``: no BrokenPipeError traceback, the shell's EPIPE status."""
    process = subprocess.Popen(
        [sys.executable, "-m", "alert_infra", "types"],
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(20)
    process.stdout.close()
    try:
        code = process.wait(timeout=60)
        err = process.stderr.read().decode()
    finally:
        process.kill()
        process.stderr.close()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code in (0, 141)  # 0 when everything fitted in the pipe before it closed


def test_verbose_log_lines_are_redacted(cli: CliRunner) -> None:
    secret = "https://hooks.slack.com/services/T0000/B0000/verbose-secret-path-4242"
    (cli.cwd / "alert-infra.toml").write_text(
        f'[channels.hook]\ntype = "slack"\nwebhook_url = "{secret}"\ntimeout = 0.5\nretry = false\n'
        'min_severity = "info"\n'
    )
    cli.env["HTTPS_PROXY"] = "http://127.0.0.1:9"  # nothing listens: every try fails fast
    run = cli("send", "t", "m", "-vv")
    assert "verbose-secret-path-4242" not in run.stdout + run.stderr
    assert "alert-infra: " in run.stderr
