"""Which values of a configuration are secrets, found without building a transport
(:func:`alert_infra.config.channel_secrets`; issue 19, item 1). No service needed."""

from __future__ import annotations

import gc
import uuid

import pytest

from alert_infra.config import channel_secrets, load_config, mapping_secrets, parse_config
from alert_infra.security import REDACTED, redact_text


def _fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def test_a_loadable_type_uses_its_secret_fields_and_keeps_its_public_endpoints() -> None:
    pytest.importorskip("alert_infra_pagerduty")
    key = _fresh("R0UTING")
    found = channel_secrets(
        "pagerduty", {"type": "pagerduty", "routing_key": key, "api_url": "https://events.example.com/v2/enqueue"}
    )
    assert found == [key]  # api_url is a public endpoint of a type that declares its secrets


def test_a_type_that_cannot_be_loaded_falls_back_to_names_that_look_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    token, url, auth, nested = (_fresh(p) for p in ("tok-", "https://hooks.example.com/", "au-", "hdr-"))
    table = {
        "type": "not-installed-anywhere",
        "routing_key": "rk-" + token,
        "webhook_url": url,
        "api_token": token,
        "auth": auth,
        "headers": {"Authorization": f"Bearer {nested}", "Accept": "application/json"},
        "verify_auth": True,  # booleans and numbers are never secrets
        "use_auth": "true",  # nor a switch written as a string
        "region": "eu-west-1",
        "timeout": 5,
        "min_severity": "error",
    }
    found = channel_secrets(table["type"], table)
    assert set(found) == {"rk-" + token, url, token, auth, f"Bearer {nested}"}


def test_variables_of_secret_options_and_variables_named_like_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("alert_infra_slack")
    path_token, key = _fresh("pathtok"), _fresh("key")
    monkeypatch.setenv("QS_HOOK_PATH", path_token)
    monkeypatch.setenv("QS_SERVICE_API_KEY", key)
    found = channel_secrets(
        "slack",
        {
            "type": "slack",
            "webhook_url": "https://hooks.example.com/services/${QS_HOOK_PATH}",
            "x": "${QS_SERVICE_API_KEY}",
        },
    )
    assert f"https://hooks.example.com/services/{path_token}" in found
    assert path_token in found  # the variable alone: it may appear without the URL around it
    assert key in found  # a variable named like a credential, wherever it is used


def test_disabled_and_broken_channels_are_masked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    off, broken = _fresh("OFFKEY"), _fresh("BROKENKEY")
    monkeypatch.setenv("QS_OFF_ROUTING_KEY", off)
    config = parse_config(
        {
            "channels": {
                "ok": {"type": "noop"},
                "off": {"type": "pagerduty", "enabled": False, "routing_key": "${QS_OFF_ROUTING_KEY}"},
                "broken": {"type": "no-such-type-here", "routing_key": broken},
            }
        }
    )
    assert config.channel("broken").problems  # unknown type: that channel fails alone
    assert set(config.secret_values()) >= {off, broken}
    assert redact_text(f"{off} {broken}") == f"{REDACTED} {REDACTED}"


def test_state_and_broker_urls_and_their_passwords() -> None:
    state_pw, broker_pw = _fresh("statepw"), _fresh("brokerpw")
    found = mapping_secrets(
        {
            "alert_infra": {
                "state": f"redis://:{state_pw}@127.0.0.1:1/0",
                "celery": {"broker_url": f"amqp://user:{broker_pw}@127.0.0.1:1//", "queue": "alerts"},
            },
            "channels": {},
        }
    )
    assert f"redis://:{state_pw}@127.0.0.1:1/0" in found and f"amqp://user:{broker_pw}@127.0.0.1:1//" in found
    assert "alerts" not in found


def test_a_configuration_masks_its_secrets_while_it_lives(tmp_path) -> None:  # type: ignore[no-untyped-def]
    password = _fresh("smtp-pw-")
    path = tmp_path / "alert-infra.toml"
    path.write_text(
        f'[channels.mail]\ntype = "smtp"\nhost = "127.0.0.1"\nfrom_email = "a@example.com"\n'
        f'to_emails = ["b@example.com"]\npassword = "{password}"\n'
    )
    config = load_config(path)
    assert redact_text(f"login {password}") == f"login {REDACTED}"
    del config
    gc.collect()
    assert redact_text(f"login {password}") == f"login {password}"  # released with its owner: nothing piles up
