"""A configuration with Slack, PagerDuty and console channels routes each severity exactly as written."""

from __future__ import annotations

import pytest
import trustme

from alert_infra import Alert, AlertDispatcher
from alert_infra.testing import https_server, isolated_plugin_host

pytest.importorskip("alert_infra_slack", reason="needs the alert-infra-slack plugin installed")
pytest.importorskip("alert_infra_pagerduty", reason="needs the alert-infra-pagerduty plugin installed")

ROUTING_KEY = "0123456789abcdef0123456789abcdef"


def test_severity_routing_across_real_channels(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """info -> console only; warning -> console + Slack; critical -> console + Slack + PagerDuty."""
    ca = trustme.CA()
    pager_answer = (202, {}, {"status": "success", "dedup_key": "k"})
    with (
        https_server(lambda request: (200, {}, "ok"), ca=ca) as slack,
        https_server(lambda request: pager_answer, ca=ca) as pager,
    ):
        monkeypatch.setenv("TEST_SLACK_WEBHOOK_URL", slack.url + "/services/T0/B0/secret-hook")
        monkeypatch.setenv("TEST_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
        config = {
            "channels": {
                "console": {"type": "console", "min_severity": "info", "stream": "stdout"},
                "ops": {"type": "slack", "webhook_url": "${TEST_SLACK_WEBHOOK_URL}", "min_severity": "warning"},
                "pager": {
                    "type": "pagerduty",
                    "routing_key": "${TEST_PAGERDUTY_ROUTING_KEY}",
                    "api_url": pager.url + "/v2/enqueue",
                    "min_severity": "critical",
                },
            }
        }
        with isolated_plugin_host(load_entry_points=True):
            dispatcher = AlertDispatcher.from_config(config)
        sent = {}
        for severity in ("info", "warning", "critical"):
            result = dispatcher.send(Alert(f"{severity} alert", "m", severity=severity))
            assert result.ok, result.outcomes
            sent[severity] = result.sent
            assert set(result.sent) | set(result.skipped) == {"console", "ops", "pager"}
        assert sent == {
            "info": ("console",),
            "warning": ("console", "ops"),
            "critical": ("console", "ops", "pager"),
        }
        assert [r.json()["blocks"][0]["text"]["text"] for r in slack.requests] == [
            "WARNING: warning alert",
            "CRITICAL: critical alert",
        ]
        assert [r.json()["payload"]["summary"] for r in pager.requests] == ["critical alert"]
    assert capsys.readouterr().out.count("alert\n") >= 3
