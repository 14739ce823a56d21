"""Management commands: ``sendtestalert`` (one test alert per channel, non-zero exit when one
fails) in real ``manage.py`` subprocesses, and the 0.1.x README's management command example."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from alert_infra.testing import https_server

HOOK_SECRET = "T0CMD/B0CMD/cmdsecretpath77"


def _slack(request):
    return 200, {}, "ok"


def _env(server, config) -> dict[str, str]:
    return {
        "TESTPROJECT_ALERT_INFRA": json.dumps(config),
        "SSL_CERT_FILE": server.ca_file,
        "REQUESTS_CA_BUNDLE": server.ca_file,
    }


def test_sendtestalert_reports_each_channel_and_fails_when_one_fails(manage_py, ca) -> None:
    with https_server(_slack, ca=ca) as server:
        good = {"SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{server.url}/services/{HOOK_SECRET}"}}
        run = manage_py("sendtestalert", env=_env(server, good))
        assert run.returncode == 0, run.stdout + run.stderr
        assert "slack: sent" in run.stdout
        assert len(server.requests) == 1 and "alert-infra test alert" in server.requests[0].body.decode()

        broken = {
            **good,
            "TELEGRAM": {"ENABLED": True, "BOT_TOKEN": "123456:cmd-secret-token"},  # no CHAT_ID
            "RETRY": False,
        }
        run = manage_py("sendtestalert", "--json", env=_env(server, broken))
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    result = json.loads(run.stdout[: run.stdout.rindex("}") + 1])
    assert result["sent"] == ["slack"] and result["failed"] == {"telegram": "AlertConfigurationError"}
    assert "1 channel(s) failed: telegram" in run.stderr
    assert HOOK_SECRET not in output and "cmd-secret-token" not in output


def test_sendtestalert_in_process_names_channels_and_exit_codes(alert_infra_settings, recorded) -> None:
    with alert_infra_settings({"CHANNELS": {"a": {"type": "noop"}, "b": {"type": "noop"}}}):
        out = io.StringIO()
        call_command("sendtestalert", "a", "--severity", "warning", "--json", stdout=out)
        result = json.loads(out.getvalue())
        assert result["sent"] == ["a"] and [o["name"] for o in result["outcomes"]] == ["a"]
        with pytest.raises(CommandError) as unknown:
            call_command("sendtestalert", "nope")
        assert unknown.value.returncode == 1
    with alert_infra_settings({"ENABLED": False}), pytest.raises(CommandError) as disabled:
        call_command("sendtestalert")
    assert disabled.value.returncode == 2
    with alert_infra_settings({"STATE": "memcached://x"}), pytest.raises(CommandError) as bad:
        call_command("sendtestalert")
    assert bad.value.returncode == 2 and str(bad.value).startswith("ALERT_INFRA['STATE']: ")


def test_readme_management_command_sends_then_reraises(alert_infra_settings, recorded) -> None:
    with alert_infra_settings({}):
        with pytest.raises(Exception, match="supplier API returned 503") as raised:
            call_command("supplier_sync")
        assert type(raised.value).__name__ == "SupplierUnavailable"
        alert = recorded()[-1]
    assert alert.title == "Supplier sync failed" and alert.message == "SupplierUnavailable"
    assert alert.severity == "critical" and alert.source == "management-command:supplier_sync"
    assert alert.metadata == {"command": "supplier_sync"}


def test_readme_management_command_in_a_real_process(manage_py, ca) -> None:
    with https_server(_slack, ca=ca) as server:
        config = {"SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{server.url}/services/{HOOK_SECRET}"}}
        run = manage_py("supplier_sync", env=_env(server, config))
    assert run.returncode != 0 and "SupplierUnavailable" in run.stderr
    assert len(server.requests) == 1 and "Supplier sync failed" in server.requests[0].body.decode()


def test_sendtestalert_reaches_every_channel_whatever_its_routing(alert_infra_settings) -> None:
    """Issue 19: with the guide's routing (``MIN_SEVERITY``, ``TAGS``, ``DEFAULT_CHANNELS``) an
    ``info`` test alert was skipped everywhere and the command exited 0."""
    routed = {
        "DEFAULT_CHANNELS": ["pager"],
        "CHANNELS": {
            "pager": {"type": "noop", "min_severity": "critical"},
            "ops": {"type": "noop", "tags": ["payments"]},
        },
    }
    with alert_infra_settings(routed):
        out = io.StringIO()
        call_command("sendtestalert", "--json", stdout=out)
        assert sorted(json.loads(out.getvalue())["sent"]) == ["ops", "pager"]
        out = io.StringIO()
        call_command("sendtestalert", "ops", stdout=out)
        assert out.getvalue().strip() == "ops: sent"


def test_sendtestalert_exits_1_when_nothing_was_sent(alert_infra_settings) -> None:
    with alert_infra_settings({}), pytest.raises(CommandError) as nothing:  # no channel: the noop one
        call_command("sendtestalert", stdout=io.StringIO())
    assert nothing.value.returncode == 1 and "nothing was sent" in str(nothing.value)
