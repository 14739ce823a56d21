"""System checks: ``manage.py check`` runs the core's validation over ``ALERT_INFRA``; each mistake
is its own message with a stable id, naming the key, never a value (in-process and through a
real ``manage.py check`` subprocess)."""

from __future__ import annotations

import json

import pytest
from django.core import checks
from django.test import override_settings

from alert_infra.django.checks import check_alert_infra

WEBHOOK_SECRET = "sekritpath99-Slack-Hook"
BOT_SECRET = "123456:tg-sekrit-token-Aa11"

#: Five kinds of mistakes (and a few more): an unknown key, an unsupported backend, a value of the
#: wrong kind, a channel that cannot be built, a setting the core refuses.
MISTAKES = {
    "EMIAL": {"ENABLED": True},
    "DEFAULT_SEVERITY": "urgent",
    "EMAIL": {"ENABLED": True, "BACKEND": "sendgird", "FROM_EMAIL": "a@example.com", "TO_EMAILS": ["b@example.com"]},
    "SLACK": {"ENABLED": "yes please", "WEBHOK_URL": f"https://hooks.slack.com/services/T1/B1/{WEBHOOK_SECRET}"},
    "TELEGRAM": {"ENABLED": True, "BOT_TOKEN": BOT_SECRET},
    "CHANNELS": {"pager": {"type": "pagerdooty", "routing_key": "x"}},
    "STATE": "memcached://cache:11211",
}
EXPECTED = [
    ("alert_infra.E002", "ALERT_INFRA['EMIAL']", "did you mean 'EMAIL'?"),
    ("alert_infra.E004", "ALERT_INFRA['EMAIL']['BACKEND']", "did you mean 'sendgrid'?"),
    ("alert_infra.E002", "ALERT_INFRA['SLACK']['WEBHOK_URL']", "did you mean 'WEBHOOK_URL'?"),
    ("alert_infra.E003", "ALERT_INFRA['SLACK']['ENABLED']", None),
    ("alert_infra.E006", "ALERT_INFRA['DEFAULT_SEVERITY']", None),
    ("alert_infra.E006", "ALERT_INFRA['STATE']", None),
    ("alert_infra.E007", "ALERT_INFRA['TELEGRAM']['CHAT_ID']", None),
    ("alert_infra.E007", "ALERT_INFRA['CHANNELS']['pager']['type']", None),
]


def _found(messages):
    return [(m.id, m.msg.split(": ", 1)[0], m.hint) for m in messages]


def test_every_mistake_is_its_own_message_naming_the_key() -> None:
    with override_settings(ALERT_INFRA=MISTAKES):
        messages = check_alert_infra()
    found = _found(messages)
    for code, key, hint in EXPECTED:
        assert any(f[0] == code and f[1] == key and (hint is None or f[2] == hint) for f in found), (code, key, found)
    assert all(isinstance(m, checks.Error) for m in messages)
    assert "pagerduty" in next(m.msg for m in messages if "pager" in m.msg)  # did you mean
    text = repr([(m.msg, m.hint) for m in messages])
    assert WEBHOOK_SECRET not in text and BOT_SECRET not in text and "tg-sekrit" not in text


def test_channel_problems_once_the_settings_parse() -> None:
    """With the file-level settings right, each channel's problems are E007, the others deliver."""
    config = {
        "SLACK": {"ENABLED": True},
        "TELEGRAM": {"ENABLED": True, "BOT_TOKEN": BOT_SECRET, "CHAT_ID": "-1001"},
        "EMAIL": {"ENABLED": True, "BACKEND": "smtp", "FROM_EMAIL": "a@example.com", "TO_EMAILS": ["b@example.com"]},
        "CHANNELS": {"pd": {"type": "pagerduty", "routing_key": "${NO_SUCH_VARIABLE_FOR_TESTS}"}},
    }
    with override_settings(ALERT_INFRA=config):
        messages = check_alert_infra()
    found = _found(messages)
    keys = {key for code, key, _ in found if code == "alert_infra.E007"}
    # Slack takes webhook_url, or bot_token and channel: the SLACK block is named, with both forms.
    assert keys == {
        "ALERT_INFRA['SLACK']",
        "ALERT_INFRA['EMAIL']['SMTP_HOST']",
        "ALERT_INFRA['CHANNELS']['pd']['routing_key']",
    }, found
    slack = next(m.msg for m in messages if m.msg.startswith("ALERT_INFRA['SLACK']:"))
    assert "webhook_url" in slack and "bot_token" in slack


def test_a_constructor_refusal_is_reported_without_the_value() -> None:
    config = {"SLACK": {"ENABLED": True, "WEBHOOK_URL": f"http://hooks.example.com/{WEBHOOK_SECRET}"}}
    with override_settings(ALERT_INFRA=config):
        messages = check_alert_infra()
    assert [m.id for m in messages] == ["alert_infra.E007"]
    assert "https" in messages[0].msg and WEBHOOK_SECRET not in messages[0].msg


def test_warnings_for_the_0_1_setting_name_and_no_channel() -> None:
    with override_settings(ALERT_INFRA=None, FEATURE_FLAG_INFRA={}):
        ids = [m.id for m in check_alert_infra()]
    assert ids == ["alert_infra.W001", "alert_infra.W002"]
    with override_settings(ALERT_INFRA="not a dict"):
        assert [m.id for m in check_alert_infra()] == ["alert_infra.E001"]
    with override_settings(ALERT_INFRA={"CHANNELS": {"memory": {"type": "noop"}}}):
        assert check_alert_infra() == []


def test_async_problems() -> None:
    with override_settings(ALERT_INFRA={"ASYNC": {"ENABLED": True, "BACKEND": "rq", "QUEUEE": "alerts"}}):
        found = _found(check_alert_infra())
    assert ("alert_infra.E002", "ALERT_INFRA['ASYNC']['QUEUEE']", "did you mean 'QUEUE'?") in found
    assert any(code == "alert_infra.E008" and key == "ALERT_INFRA['ASYNC']['BACKEND']" for code, key, _ in found)


def test_the_checks_are_registered_by_the_app() -> None:
    assert check_alert_infra in checks.registry.registry.get_checks()
    with override_settings(ALERT_INFRA={"EMIAL": {}}):
        ids = [m.id for m in checks.run_checks(tags=["alert_infra"])]
    assert ids == ["alert_infra.E002", "alert_infra.W002"]


def test_manage_py_check_reports_each_mistake(manage_py) -> None:
    """A real ``manage.py check``: exit 1, every id and key on its output, no secret value."""
    run = manage_py("check", env={"TESTPROJECT_ALERT_INFRA": json.dumps(MISTAKES)})
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    for code, key, _ in EXPECTED:
        assert f"{code}) {key}" in output or (code in output and key in output), (code, key, output)
    assert WEBHOOK_SECRET not in output and BOT_SECRET not in output


@pytest.mark.parametrize("mode", ["readme"])
def test_manage_py_check_passes_with_the_readme_settings_as_written(manage_py, mode) -> None:
    env = {
        "TESTPROJECT_ALERT_INFRA": mode,
        "ALERT_FROM_EMAIL": "alerts@example.com",
        "ALERT_TO_EMAILS": "ops@example.com,security@example.com",
        "ALERT_RESEND_API_KEY": "re_check_only_key",
        "ALERT_SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/T0/B0/{WEBHOOK_SECRET}",
    }
    run = manage_py("check", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "System check identified no issues" in run.stdout
    assert WEBHOOK_SECRET not in run.stdout + run.stderr


def test_async_values_are_checked_by_the_celery_adapters_rules() -> None:
    pytest.importorskip("alert_infra.celery")
    config = {"ASYNC": {"ENABLED": True, "MAX_RETRIES": "three", "QUEUE": "alerts"}}
    with override_settings(ALERT_INFRA=config):
        messages = [m for m in check_alert_infra() if m.id == "alert_infra.E008"]
    assert len(messages) == 1 and "MAX_RETRIES" in messages[0].msg and "three" not in messages[0].msg
    with override_settings(ALERT_INFRA={"ASYNC": {"ENABLED": True}, "CHANNELS": {"m": {"type": "noop"}}}):
        assert check_alert_infra() == []


# --- issue 19 item 7: what sending refused, the checks passed -------------------------------------
RUNTIME_REFUSALS = {
    "ENABLED": "no",
    "REDACT_SENSITIVE_DATA": "yes",
    "ASYNC": {"ENABLED": "no"},
    "EXCEPTIONS": {
        "ENABLED": "yes",
        "SEVERITY": "high",
        "RATE": "ten",
        "PER": -1,
        "DEDUP_WINDOW": "5m",
        "IGNORE": "django.http.Http404",
        "TAGZ": ["x"],
    },
}


def test_the_checks_refuse_what_sending_would_refuse_naming_the_key_and_the_fix() -> None:
    with override_settings(ALERT_INFRA=RUNTIME_REFUSALS):
        found = _found(check_alert_infra())
    expected = [
        ("alert_infra.E003", "ALERT_INFRA['ENABLED']", "write ALERT_INFRA['ENABLED'] = False"),
        (
            "alert_infra.E003",
            "ALERT_INFRA['REDACT_SENSITIVE_DATA']",
            "write ALERT_INFRA['REDACT_SENSITIVE_DATA'] = True",
        ),
        ("alert_infra.E003", "ALERT_INFRA['ASYNC']['ENABLED']", "write ALERT_INFRA['ASYNC']['ENABLED'] = False"),
        (
            "alert_infra.E003",
            "ALERT_INFRA['EXCEPTIONS']['ENABLED']",
            "write ALERT_INFRA['EXCEPTIONS']['ENABLED'] = True",
        ),
        ("alert_infra.E006", "ALERT_INFRA['EXCEPTIONS']['SEVERITY']", "did you mean 'error'?"),
        ("alert_infra.E003", "ALERT_INFRA['EXCEPTIONS']['RATE']", "write a number, such as 10"),
        ("alert_infra.E003", "ALERT_INFRA['EXCEPTIONS']['PER']", None),
        ("alert_infra.E003", "ALERT_INFRA['EXCEPTIONS']['DEDUP_WINDOW']", None),
        ("alert_infra.E003", "ALERT_INFRA['EXCEPTIONS']['IGNORE']", "such as ['django.http.Http404']"),
        ("alert_infra.E002", "ALERT_INFRA['EXCEPTIONS']['TAGZ']", "did you mean 'TAGS'?"),
    ]
    for code, key, hint in expected:
        assert any(f[0] == code and f[1] == key and (hint is None or f[2] == hint) for f in found), (code, key, found)
    assert not any(f[0] == "alert_infra.E008" for f in found)  # ASYNC off: E003 only, once


def test_a_valid_exceptions_block_passes() -> None:
    block = {"ENABLED": True, "SEVERITY": "critical", "RATE": 10, "PER": 60, "DEDUP_WINDOW": 0, "TAGS": ["django"]}
    with override_settings(ALERT_INFRA={"ENABLED": True, "EXCEPTIONS": block}):
        assert not [m for m in check_alert_infra() if isinstance(m, checks.Error)]
