"""Errors that help (issue 11, item 6), met as a user meets them: the command line in a real
subprocess, and ``from_config``/``send_alert`` in code."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import AlertConfigurationError, AlertDispatcher, UnknownChannelError
from alert_infra._checks import did_you_mean
from alert_infra.config import CHANNEL_KEYS, SETTINGS_KEYS, load_config
from alert_infra.testing import CliRunner

SECRET = "xoxb-123456789012-abcdefSECRETvalue"


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    return CliRunner(tmp_path)


def _write(cli: CliRunner, text: str) -> None:
    (cli.cwd / "alert-infra.toml").write_text(text)


def test_check_suggests_the_name_meant_for_a_type_an_option_a_setting_and_a_table(cli: CliRunner) -> None:
    _write(
        cli,
        """
[alert_infra]
defualt_channels = ["ops"]

[channels.ops]
type = "slak"
webhook_url = "https://hooks.slack.com/services/T0/B0/XYZsecretpart"

[channels.mail]
type = "console"
min_sevrity = "warning"

[channel.x]
type = "console"
""",
    )
    run = cli("check")
    assert run.returncode == 2, run.stdout + run.stderr
    for fragment in (
        "channel: unknown table; did you mean 'channels'?",
        "alert_infra.defualt_channels: unknown setting; did you mean 'default_channels'?",
        "channels.ops.type: unknown transport type 'slak'; did you mean 'slack'?",
        "channels.mail.min_sevrity: unknown option for transport type 'console'; did you mean 'min_severity'?",
    ):
        assert fragment in run.stderr, fragment
    # a near miss of an installed type is a typo: never "pip install alert-infra-slak"
    assert "pip install" not in run.stderr
    assert "XYZsecretpart" not in run.stdout + run.stderr


def test_an_unknown_type_far_from_every_installed_one_still_suggests_its_plugin(tmp_path: Path) -> None:
    config = {"channels": {"ops": {"type": "zulipchat"}}}
    with pytest.raises(AlertConfigurationError) as info:
        AlertDispatcher.from_config(config, strict=True)
    assert "pip install alert-infra-zulipchat" in str(info.value) and "did you mean" not in str(info.value)


def test_a_bad_value_is_echoed_when_it_is_not_a_secret_and_never_when_it_is(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(
        cli,
        f"""
[channels.a]
type = "console"
min_severity = "high"

[channels.b]
type = "console"
min_severity = "{SECRET}"

[channels.c]
type = "console"
min_severity = "${{SEVERITY_FROM_ENV}}"

[channels.d]
type = "console"
min_severity = "Critical!"
""",
    )
    cli.env["SEVERITY_FROM_ENV"] = "s3cr3t-from-the-environment"
    run = cli("check")
    assert run.returncode == 2
    assert "channels.a.min_severity: must be one of info, warning, error, critical; got 'high'" in run.stderr
    assert "channels.d.min_severity" in run.stderr and "got 'Critical!'" in run.stderr
    assert SECRET not in run.stderr and "SECRETvalue" not in run.stderr  # secret-shaped: not echoed
    assert "s3cr3t-from-the-environment" not in run.stderr  # from a variable: never echoed
    assert "channels.b.min_severity" in run.stderr and "channels.c.min_severity" in run.stderr


def test_a_misspelled_channel_is_a_usage_error_and_nothing_is_sent(cli: CliRunner) -> None:
    _write(cli, '[channels.ops]\ntype = "console"\n\n[channels.pager]\ntype = "console"\n')
    run = cli("send", "Disk full", "m", "--channel", "ops", "--channel", "pagr")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "no channel named 'pagr'; did you mean 'pager'?" in run.stderr
    assert "[ERROR] Disk full" not in run.stderr  # the console channel ops was not written to either
    history = cli("history", "--json")
    assert json.loads(history.stdout)["alerts"] == []  # nothing was recorded: nothing happened


def test_unknown_channel_error_is_importable_and_names_the_channel_in_code() -> None:
    from alert_infra.transports import NoOpTransport

    with AlertDispatcher([NoOpTransport(name="ops")]) as dispatcher:
        result = dispatcher.send(_alert(), ["opz"])
    assert result.failed == {"opz": UnknownChannelError.__name__}
    reason = result.outcome("opz").reason
    assert "did you mean 'ops'?" in reason
    assert issubclass(UnknownChannelError, AlertConfigurationError) and issubclass(UnknownChannelError, LookupError)


def _alert():  # type: ignore[no-untyped-def]
    from alert_infra import Alert

    return Alert("Disk full", "/var at 97%", "warning")


def test_global_options_are_accepted_before_the_verb(cli: CliRunner) -> None:
    config = cli.cwd / "elsewhere.toml"
    config.write_text('[channels.ops]\ntype = "console"\n')
    before = cli("--config", str(config), "check")
    after = cli("check", "--config", str(config))
    assert before.returncode == after.returncode == 0, before.stderr
    assert before.stdout == after.stdout and "elsewhere.toml: valid" in before.stdout
    as_json = cli("--json", "--config", str(config), "channels")
    assert json.loads(as_json.stdout)["channels"][0]["name"] == "ops"


def test_a_misspelled_verb_suggests_the_verb(cli: CliRunner) -> None:
    run = cli("chek")
    assert run.returncode == 2 and "did you mean 'check'?" in run.stderr


def test_one_try_is_singular_in_a_failure_line(cli: CliRunner) -> None:
    _write(cli, '[channels.pd]\ntype = "pagerduty"\nrouting_key = "${UNSET_ROUTING_KEY_FOR_TEST}"\n')
    run = cli("send", "t", "m")
    assert run.returncode == 1
    assert "permanent, 1 try)" in run.stdout and "1 tries" not in run.stdout


def test_no_raw_logger_lines_on_stderr_unless_verbose(cli: CliRunner) -> None:
    _write(
        cli,
        '[channels.pd]\ntype = "pagerduty"\nrouting_key = "${UNSET_ROUTING_KEY_FOR_TEST}"\n\n'
        '[channels.ops]\ntype = "noop"\n',
    )
    quiet = cli("send", "t", "m")
    assert quiet.returncode == 1
    # only the command's own lines: no "alert channel pd is unavailable" from the library's logger
    assert all(line.startswith("alert-infra: ") for line in quiet.stderr.splitlines()), quiet.stderr
    assert "unavailable" not in quiet.stderr
    loud = cli("send", "t", "m", "-v")
    assert "alert-infra: ERROR alert_infra: alert channel pd is unavailable" in loud.stderr, loud.stderr


def test_pyproject_tool_table_accepts_both_spellings_and_refuses_a_near_miss(tmp_path: Path) -> None:
    project = tmp_path / "pyproject.toml"
    project.write_text('[tool.alert_infra.channels.ops]\ntype = "console"\n')
    assert [c.name for c in load_config(project).channels] == ["ops"]
    project.write_text(
        '[tool.alert_infra.channels.a]\ntype = "console"\n[tool.alert-infra.channels.b]\ntype = "noop"\n'
    )
    with pytest.raises(AlertConfigurationError, match="both"):
        load_config(project)
    project.write_text('[tool.alertinfra.channels.ops]\ntype = "console"\n')
    runner = CliRunner(tmp_path)
    run = runner("check")
    assert run.returncode == 2 and "[tool.alertinfra] is not read; did you mean" in run.stderr


def test_every_suggestion_comes_from_the_known_names() -> None:
    """The suggestion lists of configuration are what the configuration accepts."""
    assert did_you_mean("min_sevrity", CHANNEL_KEYS) == "; did you mean 'min_severity'?"
    assert did_you_mean("dedup_windwo", SETTINGS_KEYS) == "; did you mean 'dedup_window'?"
    assert did_you_mean("Slack", ["slack", "telegram"]) == "; did you mean 'slack'?"
    assert did_you_mean("completely-different", ["slack", "telegram"]) == ""
    assert did_you_mean("", ["slack"]) == "" and did_you_mean(None, ["slack"]) == ""


@given(
    st.sampled_from(sorted(set(SETTINGS_KEYS) | set(CHANNEL_KEYS))),
    st.integers(min_value=0, max_value=40),
    st.sampled_from(string.ascii_lowercase),
)
def test_one_typo_of_a_known_key_is_answered_with_a_known_key(key: str, position: int, letter: str) -> None:
    """One character changed, dropped or doubled in a key of 6+ letters: the hint names a real key,
    never the typo itself, and never something outside the list."""
    if len(key) < 6:
        return
    i = position % len(key)
    for typo in (key[:i] + letter + key[i + 1 :], key[:i] + key[i + 1 :], key[:i] + key[i] + key[i:]):
        if typo in SETTINGS_KEYS or typo in CHANNEL_KEYS:
            continue
        hint = did_you_mean(typo, SETTINGS_KEYS)
        hint_channel = did_you_mean(typo, CHANNEL_KEYS)
        suggested = {h.split("'")[1] for h in (hint, hint_channel) if h}
        assert suggested, typo
        assert suggested <= set(SETTINGS_KEYS) | set(CHANNEL_KEYS)
        assert typo not in suggested
