"""``settings.ALERT_INFRA``: 0.1.x keys, defaults, caching, fallbacks and the provider selection,
against real local servers (HTTPS fakes for Resend, SendGrid, Slack, Telegram, PagerDuty; a real
SMTP server)."""

from __future__ import annotations

import sys
from pathlib import Path

import django
import pytest
from django.test import override_settings

from alert_infra import REDACTED, AlertConfigurationError, AlertDispatcher, DeliveryResult
from alert_infra.django import build_dispatcher, get_alert_infra_settings, send_alert
from alert_infra.testing import https_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_the_django_version_is_the_lts_this_python_supports() -> None:
    """4.2 LTS on Python 3.9 (the newest it runs), 5.2 LTS on 3.10 and 3.11, Django 6 (which ships
    ``django.tasks``) on 3.12 and later."""
    if sys.version_info >= (3, 12):
        assert django.VERSION[0] == 6
    else:
        assert django.VERSION[:2] == ((4, 2) if sys.version_info < (3, 10) else (5, 2))


# --- the 0.1.x README's "Test Django integration" example, as written ------------------------------
def test_send_alert_disabled_mode():
    with override_settings(ALERT_INFRA={"ENABLED": False, "REDACT_SENSITIVE_DATA": True}):
        result = send_alert(title="Test", message="Body", metadata={"token": "secret"})

    assert result.sent == ()
    assert result.failed == {}


def test_disabled_dispatcher_is_the_0_1_disabled_noop(alert_infra_settings) -> None:
    with alert_infra_settings({"ENABLED": False}):
        dispatcher = build_dispatcher()
        assert isinstance(dispatcher, AlertDispatcher) and dispatcher.enabled is False
        assert [t.name for t in dispatcher.transports] == ["noop"]


def test_no_enabled_transport_gives_noop(alert_infra_settings, recorded) -> None:
    with alert_infra_settings({"SLACK": {"ENABLED": False, "WEBHOOK_URL": "https://example.invalid/x"}}):
        result = send_alert(title="Nothing configured", message="Recorded in memory.")
        assert result.sent == ("noop",)
        assert recorded()[0].title == "Nothing configured"


def test_default_severity_and_redaction_switch(alert_infra_settings, recorded) -> None:
    with alert_infra_settings({"DEFAULT_SEVERITY": "critical", "REDACT_SENSITIVE_DATA": False}):
        send_alert(title="t", message="m", metadata={"token": "visible-in-a-controlled-test"})
        alert = recorded()[-1]
        assert alert.severity == "critical"
        assert alert.metadata["token"] == "visible-in-a-controlled-test"
    with alert_infra_settings({}):
        send_alert(title="t", message="m", metadata={"token": "hidden"})
        alert = recorded()[-1]
        assert alert.severity == "error" and alert.metadata["token"] == REDACTED


def test_settings_are_cached_and_setting_changed_resets_them(alert_infra_settings) -> None:
    with alert_infra_settings({"DEFAULT_SEVERITY": "warning"}):
        first = get_alert_infra_settings()
        first["DEFAULT_SEVERITY"] = "changed by the caller"  # a copy: the cache is not affected
        assert get_alert_infra_settings()["DEFAULT_SEVERITY"] == "warning"
        dispatcher = build_dispatcher()
        assert build_dispatcher() is dispatcher  # one dispatcher (threads, state) for every send
        with alert_infra_settings({"DEFAULT_SEVERITY": "info"}):
            assert get_alert_infra_settings()["DEFAULT_SEVERITY"] == "info"
            assert build_dispatcher() is not dispatcher
        assert get_alert_infra_settings()["DEFAULT_SEVERITY"] == "warning"


def test_defaults_are_0_1_defaults(alert_infra_settings) -> None:
    with alert_infra_settings({}):
        cfg = get_alert_infra_settings()
    assert cfg["ENABLED"] is True and cfg["DEFAULT_SEVERITY"] == "error" and cfg["REDACT_SENSITIVE_DATA"] is True
    assert cfg["EMAIL"]["ENABLED"] is False and cfg["EMAIL"]["BACKEND"] == "auto"
    assert cfg["ASYNC"]["TASK_NAME"] == "alert_infra.dispatch_alert" and cfg["ASYNC"]["QUEUE"] == "alerts"
    assert cfg["ASYNC"]["FAIL_SILENTLY"] is True and cfg["SLACK"] == {"ENABLED": False}


def test_feature_flag_infra_is_the_fallback(recorded) -> None:
    with override_settings(ALERT_INFRA=None, FEATURE_FLAG_INFRA={"DEFAULT_SEVERITY": "warning"}):
        assert get_alert_infra_settings()["DEFAULT_SEVERITY"] == "warning"
        from feature_flag_infra.django import send_alert as old_send_alert

        assert old_send_alert is send_alert
        assert old_send_alert(title="old settings name", message="m").sent == ("noop",)
        assert recorded()[-1].severity == "warning"
    with override_settings(
        ALERT_INFRA={"DEFAULT_SEVERITY": "info"}, FEATURE_FLAG_INFRA={"DEFAULT_SEVERITY": "warning"}
    ):
        assert get_alert_infra_settings()["DEFAULT_SEVERITY"] == "info"  # ALERT_INFRA wins


def test_a_setting_that_is_not_a_dict_is_a_clear_error(alert_infra_settings) -> None:
    with alert_infra_settings(["EMAIL"]), pytest.raises(AlertConfigurationError, match="ALERT_INFRA must be a dict"):
        send_alert(title="t", message="m")


# --- provider selection through real servers -----------------------------------------------------

FROM, TO = "alerts@example.com", ["ops@example.com", "security@example.com"]


def _ok(request):
    return 200, {}, {"id": "msg_1"}


def _slack_ok(request):
    return 200, {}, "ok"


def test_auto_prefers_resend_then_sendgrid_then_smtp(ca, alert_infra_settings, smtp_server, smtp_login) -> None:
    user, password = smtp_login
    with https_server(_ok, ca=ca) as resend, https_server(_ok, ca=ca) as sendgrid:
        email = {
            "ENABLED": True,
            "FROM_EMAIL": FROM,
            "TO_EMAILS": TO,
            "RESEND_API_KEY": "re_test_key_1",
            "RESEND_API_URL": f"{resend.url}/emails",
            "SENDGRID_API_KEY": "SG.test_key_2",
            "SENDGRID_API_URL": f"{sendgrid.url}/v3/mail/send",
            "SMTP_HOST": smtp_server.host,
            "SMTP_PORT": smtp_server.port,
            "SMTP_USERNAME": user,
            "SMTP_PASSWORD": password,
        }
        with alert_infra_settings({"EMAIL": email}):
            assert send_alert(title="Payment failure", message="HTTP 500").sent == ("email.resend",)
        assert len(resend.requests) == 1 and not sendgrid.requests
        assert resend.requests[0].headers["authorization"] == "Bearer re_test_key_1"
        assert resend.requests[0].json()["to"] == TO

        with alert_infra_settings({"EMAIL": {**email, "RESEND_API_KEY": ""}}):
            assert send_alert(title="Payment failure", message="HTTP 500").sent == ("email.sendgrid",)
        assert len(sendgrid.requests) == 1 and len(resend.requests) == 1
        assert sendgrid.requests[0].headers["authorization"] == "Bearer SG.test_key_2"

        with alert_infra_settings({"EMAIL": {**email, "RESEND_API_KEY": "", "SENDGRID_API_KEY": ""}}):
            result = send_alert(title="Payment failure", message="HTTP 500")
        assert result.sent == ("email.smtp",), result.failed
        assert smtp_server.mailbox.messages[0]["Subject"].endswith("Payment failure")
        assert smtp_server.mailbox.logins == [user]
        assert len(sendgrid.requests) == 1 and len(resend.requests) == 1


@pytest.mark.parametrize("backend", ["resend", "sendgrid", "smtp"])
def test_forced_backend_and_the_alert_environment_fallbacks(
    ca, backend, alert_infra_settings, smtp_server, smtp_login, monkeypatch
) -> None:
    """BACKEND forces a provider; FROM_EMAIL, TO_EMAILS, the API keys and SMTP_* fall back to the
    0.1.x ALERT_* environment variables."""
    user, password = smtp_login
    monkeypatch.setenv("ALERT_FROM_EMAIL", FROM)
    monkeypatch.setenv("ALERT_TO_EMAILS", "ops@example.com, security@example.com")
    monkeypatch.setenv("ALERT_RESEND_API_KEY", "re_from_env")
    monkeypatch.setenv("ALERT_SENDGRID_API_KEY", "SG.from_env")
    monkeypatch.setenv("ALERT_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("ALERT_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("ALERT_SMTP_USERNAME", user)
    monkeypatch.setenv("ALERT_SMTP_PASSWORD", password)
    with https_server(_ok, ca=ca) as server:
        email = {
            "ENABLED": True,
            "BACKEND": backend,
            "RESEND_API_URL": f"{server.url}/emails",
            "SENDGRID_API_URL": f"{server.url}/v3/mail/send",
        }
        with alert_infra_settings({"EMAIL": email}):
            result = send_alert(title="Forced", message="provider")
        assert result.sent == (f"email.{backend}",), result.failed
        if backend == "smtp":
            assert not server.requests and smtp_server.mailbox.messages[0]["To"] == ", ".join(TO)
        else:
            key = "re_from_env" if backend == "resend" else "SG.from_env"
            assert server.requests[0].headers["authorization"] == f"Bearer {key}"
            assert not smtp_server.mailbox.messages


def test_a_dollar_in_a_0_1_value_is_literal(alert_infra_settings, smtp_server, smtp_login) -> None:
    """0.1.x settings have no ${VAR} syntax: a password with '$' in it is sent as written."""
    user, _ = smtp_login
    email = {
        "ENABLED": True,
        "BACKEND": "smtp",
        "FROM_EMAIL": FROM,
        "TO_EMAILS": TO,
        "SMTP_HOST": smtp_server.host,
        "SMTP_PORT": smtp_server.port,
        "SMTP_USERNAME": user,
        "SMTP_PASSWORD": "pa${HOME}ss",
    }
    with alert_infra_settings({"EMAIL": email}):
        result = send_alert(title="t", message="m")
    assert "email.smtp" in result.failed  # the server refused that password...
    assert set(smtp_server.mailbox.passwords) == {"pa${HOME}ss"}  # ...which was sent as written


def test_slack_and_telegram_blocks(ca, alert_infra_settings) -> None:
    with (
        https_server(_slack_ok, ca=ca) as slack,
        https_server(lambda r: (200, {}, {"ok": True, "result": {}}), ca=ca) as telegram,
    ):
        settings_block = {
            "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{slack.url}/services/T000/B000/XXXX"},
            "TELEGRAM": {
                "ENABLED": True,
                "BOT_TOKEN": "123456:tg-token",
                "CHAT_ID": "-100123",
                "API_BASE_URL": telegram.url,
            },
        }
        with alert_infra_settings(settings_block):
            result = send_alert(title="API outage", message="Health checks are failing.", severity="critical")
        assert result.sent == ("slack", "telegram") and result.ok
        assert slack.requests[0].path == "/services/T000/B000/XXXX"
        assert telegram.requests[0].path == "/bot123456:tg-token/sendMessage"
        assert telegram.requests[0].json()["chat_id"] in ("-100123", -100123)


def test_channels_take_the_toml_structure_with_routing_and_any_plugin(ca, alert_infra_settings, recorded) -> None:
    """CHANNELS is [channels] of alert-infra.toml: a PagerDuty channel (a plugin type) only for
    critical alerts, beside a 0.1.x SLACK block; DEFAULT_CHANNELS and RETRY as core settings."""
    pytest.importorskip("alert_infra_pagerduty")
    with (
        https_server(lambda r: (202, {}, {"status": "success", "dedup_key": "k"}), ca=ca) as pager,
        https_server(_slack_ok, ca=ca) as slack,
    ):
        config = {
            "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{slack.url}/services/T/B/C", "MIN_SEVERITY": "warning"},
            "CHANNELS": {
                "pager": {
                    "type": "pagerduty",
                    "routing_key": "R0UTINGKEY0000000000000000000000",
                    "api_url": f"{pager.url}/v2/enqueue",
                    "min_severity": "critical",
                },
                "memory": {"type": "noop"},
            },
            "RETRY": False,
        }
        with alert_infra_settings(config):
            low = send_alert(title="Cache warm-up slow", message="m", severity="info")
            high = send_alert(title="Database down", message="m", severity="critical")
            only = send_alert(title="Named", message="m", severity="critical", channels=["memory"])
        assert low.sent == ("memory",)
        assert high.sent == ("slack", "pager", "memory")
        assert only.sent == ("memory",)
        assert len(pager.requests) == 1 and pager.requests[0].json()["payload"]["summary"].endswith("Database down")
        assert len(slack.requests) == 1


def test_core_policies_and_audit_work_from_settings(ca, alert_infra_settings, tmp_path: Path) -> None:
    """DEDUP_WINDOW on a 0.1.x block and AUDIT (the core's audit trail) from settings."""
    from alert_infra.audit import AuditStore

    audit = tmp_path / "audit.sqlite3"
    with https_server(_slack_ok, ca=ca) as slack:
        config = {
            "SLACK": {"ENABLED": True, "WEBHOOK_URL": f"{slack.url}/services/T/B/C", "DEDUP_WINDOW": 300},
            "AUDIT": f"sqlite:///{audit}",
        }
        with alert_infra_settings(config):
            first = send_alert(title="Queue backlog high", message="10,000 jobs")
            second = send_alert(title="Queue backlog high", message="10,001 jobs")
            build_dispatcher().close()
        assert first.sent == ("slack",)
        assert second.sent == () and second.outcomes[0].status == "skipped"
        assert len(slack.requests) == 1
    store = AuditStore(str(audit))
    try:
        titles = [record.title for record in store.query(limit=10)]
    finally:
        store.close()
    assert titles.count("Queue backlog high") == 2


def test_a_broken_channel_fails_alone(alert_infra_settings) -> None:
    """Per-channel degradation: SLACK without a webhook URL fails; the others deliver."""
    with alert_infra_settings({"SLACK": {"ENABLED": True}, "CHANNELS": {"memory": {"type": "noop"}}}):
        result = send_alert(title="t", message="m")
    assert result.sent == ("memory",)
    assert result.failed == {"slack": "AlertConfigurationError"}
    assert isinstance(result, DeliveryResult) and "webhook_url" in (result.outcomes[0].reason or "")


def test_readme_direct_smtp_and_provider_selection_blocks_as_written(
    alert_infra_settings, smtp_server, smtp_login, monkeypatch
) -> None:
    """The 0.1.x README's "Django with direct SMTP transport" and "Django email provider
    selection" blocks, pasted as written (``env`` is django-environ's API, see testproject/env.py),
    against the real SMTP server."""
    from testproject.env import env

    user, password = smtp_login
    for name, value in {
        "ALERT_SMTP_HOST": smtp_server.host,
        "ALERT_SMTP_PORT": str(smtp_server.port),
        "ALERT_SMTP_USERNAME": user,
        "ALERT_SMTP_PASSWORD": password,
        "ALERT_FROM_EMAIL": "alerts@example.com",
        "ALERT_TO_EMAILS": "ops@example.com,security@example.com",
    }.items():
        monkeypatch.setenv(name, value)

    ALERT_INFRA = {
        "EMAIL": {
            "ENABLED": True,
            "BACKEND": "smtp",
            "SMTP_HOST": env("ALERT_SMTP_HOST"),
            "SMTP_PORT": env.int("ALERT_SMTP_PORT", default=587),
            "SMTP_USERNAME": env("ALERT_SMTP_USERNAME"),
            "SMTP_PASSWORD": env("ALERT_SMTP_PASSWORD"),
            "SMTP_USE_TLS": True,
            "FROM_EMAIL": env("ALERT_FROM_EMAIL"),
            "TO_EMAILS": env.list("ALERT_TO_EMAILS"),
            "TIMEOUT": 8.0,
        }
    }
    with alert_infra_settings(ALERT_INFRA):
        assert send_alert(title="Direct SMTP", message="m").sent == ("email.smtp",)

    ALERT_INFRA = {
        "EMAIL": {
            "ENABLED": True,
            "BACKEND": "auto",
            "FROM_EMAIL": "alerts@example.com",
            "TO_EMAILS": ["ops@example.com"],
            "RESEND_API_KEY": env("ALERT_RESEND_API_KEY", default=""),
            "SENDGRID_API_KEY": env("ALERT_SENDGRID_API_KEY", default=""),
            "SMTP_HOST": env("ALERT_SMTP_HOST", default=""),
            "SMTP_PORT": env.int("ALERT_SMTP_PORT", default=587),
            "SMTP_USERNAME": env("ALERT_SMTP_USERNAME", default=""),
            "SMTP_PASSWORD": env("ALERT_SMTP_PASSWORD", default=""),
        }
    }
    with alert_infra_settings(ALERT_INFRA):
        assert send_alert(title="Auto falls back to SMTP", message="m").sent == ("email.smtp",)
    subjects = [m["Subject"] for m in smtp_server.mailbox.messages]
    assert (
        len(subjects) == 2 and subjects[0].endswith("Direct SMTP") and subjects[1].endswith("Auto falls back to SMTP")
    )
    assert smtp_server.mailbox.messages[0]["To"] == "ops@example.com, security@example.com"
