"""``[templates.NAME]`` read with the rest of a configuration: compiled when it is parsed, reported by
``alert-infra check`` with the other problems (template and line named), and used by
``Alert.from_template`` from the loaded configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alert_infra import Alert, AlertConfigurationError
from alert_infra.config import load_config
from alert_infra.testing import CliRunner

GOOD = """
[channels.ops]
type = "console"

[templates.risk]
title = "[RISK] {{ risk_type }} threshold breached"
body = "Desk {{ desk }} is over its {{ risk_type }} limit."
"""


def test_templates_are_compiled_with_the_configuration(tmp_path: Path) -> None:
    path = tmp_path / "alert-infra.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert sorted(config.templates) == ["risk"]
    alert = Alert.from_template("risk", config, risk_type="VaR", desk="rates", severity="critical")
    assert alert.title == "[RISK] VaR threshold breached" and alert.severity == "critical"
    assert alert.message == "Desk rates is over its VaR limit."


def test_a_template_problem_is_a_configuration_problem_among_the_others(tmp_path: Path) -> None:
    path = tmp_path / "alert-infra.toml"
    path.write_text(GOOD.replace("{{ desk }}", "{{ desk ") + '\n[alert_infra]\ndefualt_channels = ["ops"]\n')
    with pytest.raises(AlertConfigurationError) as info:
        load_config(path)
    text = str(info.value)
    assert "templates.risk.body" in text and "line 1" in text
    assert "did you mean 'default_channels'" in text  # reported together, not one at a time


def test_check_reports_a_template_error_and_an_unknown_table_is_suggested(tmp_path: Path) -> None:
    cli = CliRunner(tmp_path)
    (tmp_path / "alert-infra.toml").write_text(GOOD.replace("{{ risk_type }} threshold", "{risk_type} threshold"))
    done = cli("check", "--json")
    assert done.returncode == 2
    message = json.loads(done.stdout)["error"]["message"]
    assert "templates.risk.title" in message and "{{ risk_type }}" in message
    (tmp_path / "alert-infra.toml").write_text(GOOD.replace("[templates.risk]", "[template.risk]"))
    done = cli("check", "--json")
    assert "did you mean 'templates'" in json.loads(done.stdout)["error"]["message"]
