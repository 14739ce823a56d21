"""One bad channel never silences the others (issue 11, item 1).

A per-channel configuration problem (unknown type, unset ``${VAR}``, an option the transport's
constructor refuses) makes that channel a ``failed`` outcome carrying its configuration error;
every healthy channel delivers. ``strict=True`` refuses any problem. Tested through
``from_config``, ``send_alert`` and the CLI in a real subprocess; every captured output is
searched for the secrets.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_infra import Alert, AlertConfigurationError, AlertDispatcher, load_config, send_alert
from alert_infra.testing import CliRunner
from alert_infra.transports import UnavailableTransport

SLACK_SECRET = "http://hooks.slack.com/services/T0DEGRADE/B0DEGRADE/degrade-secret-slack-9876"
SLACK_SECRET_PART = "degrade-secret-slack-9876"
PD_SECRET = "pd-degrade-secret-routing-key-5555"

CONFIG: dict[str, Any] = {
    "channels": {
        "good": {"type": "noop"},
        "pd": {"type": "pagerduty", "routing_key": "${PAGERDUTY_ROUTING_KEY}"},
        # a secret the transport's constructor refuses (http://): only its reason may appear
        "slack": {"type": "slack", "webhook_url": SLACK_SECRET},
    }
}

TOML = f"""
[channels.good]
type = "noop"

[channels.pd]
type = "pagerduty"
routing_key = "${{PAGERDUTY_ROUTING_KEY}}"

[channels.slack]
type = "slack"
webhook_url = "{SLACK_SECRET}"

[channels.crit]
type = "pagerduty"
routing_key = "${{PAGERDUTY_ROUTING_KEY}}"
min_severity = "critical"
"""


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SLACK_SECRET_PART not in text
        assert PD_SECRET not in text


def test_from_config_delivers_to_healthy_channels_and_fails_the_broken_ones(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="alert_infra"):
        dispatcher = AlertDispatcher.from_config(CONFIG)
        built_log = [r for r in caplog.records if r.levelno == logging.ERROR]
        try:
            result = dispatcher.send(Alert("Disk full", "/var at 97%", "critical"))
            again = dispatcher.send(Alert("Disk full", "/var at 98%", "critical"))
        finally:
            dispatcher.close()
    assert result.sent == ("good",) and again.sent == ("good",)
    by_name = {o.name: o for o in result.outcomes}
    assert by_name["pd"].status == "failed" and by_name["pd"].error == "AlertConfigurationError"
    assert "PAGERDUTY_ROUTING_KEY is not set" in (by_name["pd"].reason or "")
    assert by_name["pd"].retryable is False and by_name["pd"].attempts == 1
    assert by_name["slack"].status == "failed" and "channel 'slack'" in (by_name["slack"].reason or "")
    # logged once, at ERROR, when the dispatcher was built (not once per alert)
    assert sorted(r.getMessage().split(" is unavailable")[0] for r in built_log) == [
        "alert channel pd",
        "alert channel slack",
    ]
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2
    assert isinstance(dispatcher.transports[1], UnavailableTransport)
    _no_secret(caplog.text, repr(result), json.dumps(result.to_dict(), default=str), repr(dispatcher.transports))


def test_strict_refuses_listing_every_problem_without_secrets() -> None:
    for build in (
        lambda: AlertDispatcher.from_config(CONFIG, strict=True),
        lambda: load_config(CONFIG).build_dispatcher(strict=True),
    ):
        with pytest.raises(AlertConfigurationError) as info:
            build()
        text = str(info.value)
        assert text.startswith("2 problems in <mapping>:"), text
        assert "PAGERDUTY_ROUTING_KEY is not set" in text and "channel 'slack'" in text
        _no_secret(text, repr(info.value.__cause__), repr(info.value.__context__))


def test_routing_of_a_broken_channel_still_applies() -> None:
    config = {
        "channels": {
            "good": {"type": "noop"},
            "crit": {"type": "nope-not-installed", "min_severity": "critical", "tags": ["db"]},
        }
    }
    dispatcher = AlertDispatcher.from_config(config)
    try:
        info = dispatcher.send(Alert("t", "m", "info", tags=("db",)))
        critical = dispatcher.send(Alert("t", "m", "critical", tags=("db",)))
        untagged = dispatcher.send(Alert("t", "m", "critical"))
    finally:
        dispatcher.close()
    assert info.ok and "crit" in info.skipped
    assert set(critical.failed) == {"crit"} and critical.sent == ("good",)
    (outcome,) = [o for o in critical.outcomes if o.name == "crit"]
    assert outcome.error == "UnknownTransportError"
    assert "crit" in untagged.skipped


def test_a_structural_error_still_refuses_the_whole_file() -> None:
    with pytest.raises(AlertConfigurationError, match="defualt_channels: unknown setting"):
        AlertDispatcher.from_config({"alert_infra": {"defualt_channels": ["good"]}, "channels": CONFIG["channels"]})
    with pytest.raises(AlertConfigurationError, match="extra: unknown table"):
        load_config({"extra": {}, "channels": {"good": {"type": "noop"}}})


def test_send_alert_delivers_to_the_good_channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alert_infra.config import reset_default_dispatcher

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALERT_INFRA_CONFIG", raising=False)
    (tmp_path / "alert-infra.toml").write_text(TOML)
    reset_default_dispatcher()
    try:
        result = send_alert("Disk full", "/var at 97%", "critical")
    finally:
        reset_default_dispatcher()
    assert result.sent == ("good",)
    assert set(result.failed) == {"pd", "slack", "crit"}
    _no_secret(repr(result))


def test_the_channel_that_reports_a_secret_in_its_error_is_still_masked() -> None:
    """A constructor quoting the secret it refuses: the placeholder's reason is redacted."""
    config = {"channels": {"pd": {"type": "pagerduty", "routing_key": PD_SECRET, "api_url": "ftp://x"}}}
    dispatcher = AlertDispatcher.from_config(config)
    try:
        result = dispatcher.send(Alert("t", "m"))
    finally:
        dispatcher.close()
    assert set(result.failed) == {"pd"}
    _no_secret(repr(result), repr(dispatcher.transports))


# -- the CLI, as a user meets it ----------------------------------------------------------------------
@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    runner = CliRunner(tmp_path)
    runner.env.pop("PAGERDUTY_ROUTING_KEY", None)
    (tmp_path / "alert-infra.toml").write_text(TOML)
    return runner


def test_cli_send_delivers_to_the_good_channel_and_exits_1_with_the_reason(cli: CliRunner) -> None:
    sent = cli("send", "Disk full", "/var at 97%", "--severity", "critical")
    assert sent.returncode == 1, sent.stderr
    assert "sent     good" in sent.stdout
    assert "failed   pd  (AlertConfigurationError: channels.pd.routing_key: environment variable" in sent.stdout
    as_json = cli("send", "Disk full", "again", "--severity", "critical", "--json")
    assert as_json.returncode == 1
    outcomes = {o["name"]: o for o in json.loads(as_json.stdout)["channels"]}
    assert outcomes["good"]["status"] == "sent"
    assert outcomes["pd"]["status"] == "failed" and "PAGERDUTY_ROUTING_KEY" in outcomes["pd"]["reason"]
    assert outcomes["slack"]["status"] == "failed"
    history = cli("history")
    assert history.returncode == 0, history.stderr
    assert "pd:failed" in history.stdout and "PAGERDUTY_ROUTING_KEY is not set" in history.stdout
    history_json = cli("history", "--json")
    records = json.loads(history_json.stdout)["alerts"]
    reasons = {c["name"]: c.get("reason") for c in records[0]["channels"]}
    assert "PAGERDUTY_ROUTING_KEY" in (reasons["pd"] or "")
    _no_secret(*(p.stdout + p.stderr for p in (sent, as_json, history, history_json)))


def test_cli_channel_selection_with_a_broken_neighbour(cli: CliRunner) -> None:
    good = cli("send", "t", "m", "--channel", "good")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "sent     good" in good.stdout and "pd" not in good.stdout
    broken = cli("send", "t", "m", "--channel", "pd")
    assert broken.returncode == 1
    assert "failed   pd" in broken.stdout and "PAGERDUTY_ROUTING_KEY is not set" in broken.stdout
    info = cli("send", "t", "m", "--severity", "info", "--channel", "crit", "--json")
    assert info.returncode == 0  # a broken channel's routing still applies: skipped for an info alert
    (outcome,) = json.loads(info.stdout)["channels"]
    assert outcome["status"] == "skipped"
    _no_secret(*(p.stdout + p.stderr for p in (good, broken, info)))


# -- properties ---------------------------------------------------------------------------------------
HYP_SECRET = "hyp-degrade-secret-7777"
_values = st.one_of(
    st.sampled_from([HYP_SECRET, "${HYP_DEGRADE_UNSET}", f"http://{HYP_SECRET}", "", "12345"]),
    st.text(max_size=12),
    st.integers(-5, 5),
)
_bad_channel = st.fixed_dictionaries(
    {"type": st.sampled_from(["noop", "slak", "pagerduty", "slack", "telegram", "", "${HYP_DEGRADE_UNSET}"])},
    optional={
        "x": _values,
        "routing_key": _values,
        "webhook_url": _values,
        "bot_token": _values,
        "chat_id": _values,
        "min_severity": st.sampled_from(["info", "warning", "error", "critical", "${HYP_DEGRADE_UNSET}"]),
    },
)


@given(bad=_bad_channel, severity=st.sampled_from(["info", "critical"]))
def test_any_broken_neighbour_never_silences_a_healthy_channel(bad: dict[str, Any], severity: str) -> None:
    """Whatever a second channel holds, the healthy one delivers (or the file is refused as a whole
    for a routing mistake), strict mode refuses exactly when something is broken, and no secret
    value appears in any error, outcome or repr."""

    os.environ.pop("HYP_DEGRADE_UNSET", None)
    config = {"channels": {"good": {"type": "noop"}, "bad": dict(bad)}}
    refused = None
    try:
        dispatcher = AlertDispatcher.from_config(config)
    except AlertConfigurationError as exc:  # only the file's own mistakes refuse everything
        refused = str(exc)
    if refused is not None:
        assert "channels.bad.min_severity" in refused or "channels.bad.enabled" in refused, refused
        assert HYP_SECRET not in refused
        return
    try:
        result = dispatcher.send(Alert("t", "m", severity))
        broken = [t for t in dispatcher.transports if isinstance(t, UnavailableTransport)]
    finally:
        dispatcher.close()
    assert "good" in result.sent
    assert (result.failed.get("bad") is not None) == bool(broken) or "bad" in result.skipped
    strict_error = None
    try:
        AlertDispatcher.from_config(config, strict=True).close()
    except AlertConfigurationError as exc:
        strict_error = str(exc)
    assert (strict_error is not None) == bool(broken), strict_error
    assert HYP_SECRET not in (strict_error or "")
    texts = [repr(result), json.dumps(result.to_dict(), default=str), repr(broken)]
    assert not any(HYP_SECRET in t for t in texts), texts


def test_asend_fails_the_broken_channel_alone() -> None:
    import asyncio

    dispatcher = AlertDispatcher.from_config(CONFIG)
    try:
        result = asyncio.run(dispatcher.asend(Alert("t", "m", "critical")))
    finally:
        dispatcher.close()
    assert result.sent == ("good",) and set(result.failed) == {"pd", "slack"}
