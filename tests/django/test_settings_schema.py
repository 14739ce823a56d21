"""``settings.ALERT_INFRA`` takes what the configuration file takes, through the same schema: the
``[alert_infra]`` settings (``RESOLVE_WINDOW``, ``GROUP_FLUSHER``...), the top-level tables
(``SILENCES``, ``INHIBIT_RULES``, ``TEMPLATES``) and, in each 0.1.x block, every channel key
(``GROUP_BY``, ``GROUP_WAIT``, ``GROUP_INTERVAL``, ``REPEAT_INTERVAL``, ``GROUP_WAIT_CRITICAL``,
``TITLE_TEMPLATE``...). A typo is an ``E002`` with "did you mean", a bad value the core's own
problem named by its settings key; in-process and through a real ``manage.py check``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings

from alert_infra.config import CHANNEL_KEYS, SETTINGS_KEYS, load_config
from alert_infra.django.checks import check_alert_infra
from alert_infra.django.conf import NOT_IN_SETTINGS, load_alert_config

HOOK = "https://hooks.slack.com/services/T1/B1/schemaSekrit0042"
GROUPED_SLACK = {
    "ENABLED": True,
    "WEBHOOK_URL": HOOK,
    "GROUP_BY": ["source", "metadata.host"],
    "GROUP_WAIT": "45s",
    "GROUP_INTERVAL": "10m",
    "REPEAT_INTERVAL": "3h",
    "GROUP_WAIT_CRITICAL": 0,
    "TITLE_TEMPLATE": "[{{ alert.severity }}] {{ alert.title }}",
}
GROUPED = {
    "SLACK": GROUPED_SLACK,
    "CHANNELS": {"pager": {"type": "noop", "group_by": ["..."], "group_wait": "5s"}},
    "RESOLVE_TIMEOUT": "10m",
    "RESOLVE_WINDOW": "2d",
    "GROUP_FLUSHER": "worker",
    "SILENCES": [{"matchers": ['source="billing"'], "duration": "2h", "comment": "migration"}],
    "INHIBIT_RULES": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"']}],
}
#: The same configuration as a file.
TOML = f"""
[alert_infra]
resolve_timeout = "10m"
resolve_window = "2d"
group_flusher = "worker"

[channels.slack]
type = "slack"
webhook_url = "{HOOK}"
timeout = 5.0
group_by = ["source", "metadata.host"]
group_wait = "45s"
group_interval = "10m"
repeat_interval = "3h"
group_wait_critical = 0
title_template = "[{{{{ alert.severity }}}}] {{{{ alert.title }}}}"

[channels.pager]
type = "noop"
group_by = ["..."]
group_wait = "5s"

[[silences]]
matchers = ['source="billing"']
duration = "2h"
comment = "migration"

[[inhibit_rules]]
source_matchers = ['severity="critical"']
target_matchers = ['severity="warning"']
"""


def _errors(value: Any) -> list[tuple[str, str, str | None]]:
    with override_settings(ALERT_INFRA=value):
        messages = [m for m in check_alert_infra() if m.id.startswith("alert_infra.E")]
    return [(m.id, m.msg.split(": ", 1)[0], m.hint) for m in messages]


def _policy(config: Any, channel: str) -> dict[str, Any]:
    (found,) = [c for c in config.channels if c.name == channel]
    assert found.grouping is not None, channel
    return {
        "group_by": found.grouping.group_by,
        "group_wait": found.grouping.group_wait,
        "group_interval": found.grouping.group_interval,
        "repeat_interval": found.grouping.repeat_interval,
        "group_wait_critical": found.grouping.group_wait_critical,
        "title_template": found.title_template is not None,
    }


def test_grouping_settings_are_taken_and_mean_what_the_file_means(tmp_path: Any) -> None:
    assert _errors(GROUPED) == []
    (tmp_path / "alert-infra.toml").write_text(TOML, encoding="utf-8")
    from_file = load_config(str(tmp_path / "alert-infra.toml"))
    with override_settings(ALERT_INFRA=GROUPED):
        from_settings, problems = load_alert_config()
    assert problems == []
    for channel in ("slack", "pager"):
        assert _policy(from_settings, channel) == _policy(from_file, channel)
    assert _policy(from_settings, "slack")["group_by"] == ("source", "metadata.host")
    assert _policy(from_settings, "slack")["group_wait"] == 45 and _policy(from_settings, "pager")["group_wait"] == 5
    for name in ("resolve_timeout", "resolve_window", "group_flusher", "silences", "inhibit_rules"):
        assert getattr(from_settings, name) == getattr(from_file, name), name
    assert from_settings.resolve_window == 2 * 86400 and from_settings.group_flusher == "worker"


def test_every_key_of_the_file_is_a_key_of_the_settings() -> None:
    """The schema's own key lists, not a copy: a key the file gains, the settings gain."""
    from alert_infra.django.conf import block_keys, core_keys, top_keys

    for key in SETTINGS_KEYS:
        assert (key.upper() in core_keys()[0]) != (key in NOT_IN_SETTINGS), key
        assert key.upper() in top_keys() or key in NOT_IN_SETTINGS, key
    own = {"type", "enabled", "timeout"}
    for block in ("SLACK", "TELEGRAM", "EMAIL"):
        for key in CHANNEL_KEYS:
            assert key in own or key.upper() in block_keys(block), (block, key)
    assert {"TEMPLATES", "SILENCES", "INHIBIT_RULES"} <= set(top_keys())


@pytest.mark.parametrize(
    ("settings_value", "expected"),
    [
        (
            {"SLACK": {**GROUPED_SLACK, "GROUP_WAITT": "1m"}},
            ("alert_infra.E002", "ALERT_INFRA['SLACK']['GROUP_WAITT']", "did you mean 'GROUP_WAIT'?"),
        ),
        (
            {"SLACK": {**GROUPED_SLACK, "REPEAT_INTERVALL": "1h"}},
            ("alert_infra.E002", "ALERT_INFRA['SLACK']['REPEAT_INTERVALL']", "did you mean 'REPEAT_INTERVAL'?"),
        ),
        (
            {"RESOLVE_WINDW": "1d"},
            ("alert_infra.E002", "ALERT_INFRA['RESOLVE_WINDW']", "did you mean 'RESOLVE_WINDOW'?"),
        ),
        (
            {"GROUP_FLUSHR": "worker"},
            ("alert_infra.E002", "ALERT_INFRA['GROUP_FLUSHR']", "did you mean 'GROUP_FLUSHER'?"),
        ),
        (
            {"DELIVERY": "spool"},
            ("alert_infra.E002", "ALERT_INFRA['DELIVERY']", NOT_IN_SETTINGS["delivery"]),
        ),
    ],
)
def test_a_typo_is_named_with_did_you_mean(settings_value: dict[str, Any], expected: tuple[str, str, str]) -> None:
    assert _errors(settings_value) == [expected]


def test_a_bad_value_is_the_schemas_problem_named_by_its_settings_key() -> None:
    found = _errors(
        {
            "SLACK": {**GROUPED_SLACK, "GROUP_WAIT": "soon"},
            "TELEGRAM": {"ENABLED": True, "BOT_TOKEN": "123456:tg-schema-Aa11", "CHAT_ID": "1", "GROUP_BY": ["colour"]},
            "RESOLVE_WINDOW": "forever",
            "GROUP_FLUSHER": "cron",
            "CHANNELS": {"pager": {"type": "noop", "group_by": ["..."], "group_wiat": "5s"}},
        }
    )
    keys = {key for _, key, _ in found}
    assert {
        "ALERT_INFRA['SLACK']['GROUP_WAIT']",
        "ALERT_INFRA['TELEGRAM']['GROUP_BY']",
        "ALERT_INFRA['RESOLVE_WINDOW']",
        "ALERT_INFRA['GROUP_FLUSHER']",
        "ALERT_INFRA['CHANNELS']['pager']['group_wiat']",
    } <= keys, found
    assert not [key for key in keys if "channels." in key or "alert_infra." in key], found  # every one renamed
    assert HOOK not in repr(found)


def test_manage_py_check_takes_the_grouping_settings_and_names_a_typo(manage_py: Any) -> None:
    """A real settings module (the test project's, ``ALERT_INFRA`` from the environment) and a real
    ``manage.py check``: the grouped settings pass; a typo and a bad value fail, named."""
    good = manage_py("check", env={"TESTPROJECT_ALERT_INFRA": json.dumps(GROUPED)})
    assert good.returncode == 0, good.stdout + good.stderr
    assert "alert_infra" not in good.stdout + good.stderr
    bad = {**GROUPED, "SLACK": {**GROUPED_SLACK, "GROUP_INTERVALL": "1m"}, "RESOLVE_WINDOW": "forever"}
    run = manage_py("check", env={"TESTPROJECT_ALERT_INFRA": json.dumps(bad)})
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "(alert_infra.E002) ALERT_INFRA['SLACK']['GROUP_INTERVALL']: unknown key" in output
    assert "HINT: did you mean 'GROUP_INTERVAL'?" in output
    assert "ALERT_INFRA['RESOLVE_WINDOW']" in output
    assert HOOK not in output


def test_the_top_level_tables_problems_are_named_by_their_settings_keys() -> None:
    found = _errors(
        {
            "SILENCES": [{"matchers": ['sorce="billing"'], "duration": "2h"}],
            "INHIBIT_RULES": [{"source_matchers": "x"}],
            "TEMPLATES": {"short": {"title": "{{ alert.title", "body": "b"}},
        }
    )
    assert sorted(key for _, key, _ in found) == [
        "ALERT_INFRA['INHIBIT_RULES'][0]",
        "ALERT_INFRA['SILENCES'][0]",
        "ALERT_INFRA['TEMPLATES']['short']['title'], line 1",
    ], found
    with override_settings(ALERT_INFRA={"SILENCES": [{"matchers": ['sorce="billing"'], "duration": "2h"}]}):
        (message,) = [m for m in check_alert_infra() if m.id.startswith("alert_infra.E")]
    assert "did you mean 'source'?" in message.msg
